"""Find a strategy's source by built-in name or file path.

The source text is what a run records in its header, so a journal can be
replayed without the file that produced it.
"""

from __future__ import annotations

from pathlib import Path

from tidemark.core.strategy import LoadedStrategy, StrategyError, load_source
from tidemark.strategies import builtin_names, builtin_path


def resolve_strategy(spec: str) -> tuple[str, str]:
    """``(source, origin)`` for a built-in name or a ``.py`` path."""
    builtin = builtin_path(spec)
    if builtin is not None:
        return builtin.read_text(encoding="utf-8"), f"builtin:{spec}"
    path = Path(spec)
    if path.suffix == ".py" or path.exists():
        try:
            return path.read_text(encoding="utf-8"), path.name
        except OSError as exc:
            raise StrategyError(f"{path}: cannot read strategy file: {exc.strerror}") from None
    raise StrategyError(f"unknown strategy {spec!r}: not a built-in ({', '.join(builtin_names())}) nor a .py file")


def load(spec: str) -> LoadedStrategy:
    source, origin = resolve_strategy(spec)
    return load_source(source, origin)


def catalogue() -> list[LoadedStrategy]:
    """Every built-in strategy, loaded (schemas validated)."""
    return [load(name) for name in builtin_names()]
