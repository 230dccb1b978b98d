"""The strategy contract: what a strategy module or class provides, and
loading one from its source text (as journaled in a run header).

See :mod:`tidemark.core.strategy` for the contract itself.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tidemark.core.ids import content_id
from tidemark.core.strategy.params import check_schema

if TYPE_CHECKING:
    from tidemark.core.strategy.context import Context


class StrategyError(RuntimeError):
    """A strategy does not follow the contract."""


# -- loading -------------------------------------------------------------------------------


@dataclass
class LoadedStrategy:
    """A strategy ready to run: its hooks bound, its schema checked."""

    schema: dict[str, Any]
    on_init: Callable[[Any], None] | None
    on_bar: Callable[[Any, int], None]
    on_order: Callable[[Any, Any], None] | None
    on_trade: Callable[[Any, Any], None] | None
    on_finish: Callable[[Any], None] | None
    source: str
    on_book: Callable[[Any, Any], None] | None = None
    on_quote: Callable[[Any, Any], None] | None = None
    wake: Callable[[Any], Any] | None = None
    on_open: Callable[[Any, int], None] | None = None

    @property
    def id(self) -> str:
        return str(self.schema["id"])

    @property
    def acts_on_bars(self) -> bool:
        """True when the strategy defines ``on_bar`` or ``on_open`` (else it needs books)."""
        return self.on_bar is not _no_bar or self.on_open is not None


class Strategy:
    """Base for class-based strategies: override the hooks you need."""

    @classmethod
    def schema(cls) -> dict[str, Any]:
        return {"id": cls.__name__.lower(), "name": cls.__name__, "inputs": {}}

    def on_init(self, ctx: Context) -> None:
        """Called once before the first bar."""

    def on_bar(self, ctx: Context, i: int) -> None:
        """Called once per time step with bars (override, or use the book hooks)."""


def _no_bar(ctx: Context, i: int) -> None:
    """``on_bar`` of a strategy driven by books only."""


def load_source(source: str, filename: str = "<strategy>") -> LoadedStrategy:
    """Build a strategy from its source text (as stored in a run header)."""
    module = types.ModuleType(f"tidemark_strategy_{content_id(filename, length=12)}")
    module.__file__ = filename
    try:
        code = compile(source, filename, "exec")
        exec(code, module.__dict__)
    except Exception as exc:
        raise StrategyError(f"{filename}: cannot load strategy: {type(exc).__name__}: {exc}") from exc
    return from_namespace(module.__dict__, source, filename)


def from_namespace(namespace: dict[str, Any], source: str, filename: str) -> LoadedStrategy:
    driven = any(callable(namespace.get(hook)) for hook in ("on_bar", "on_open", "on_book", "on_quote"))
    if driven and callable(namespace.get("schema")):
        hooks: Any = types.SimpleNamespace(**namespace)
        schema = namespace["schema"]()
    else:
        classes = [
            obj
            for obj in namespace.values()
            if isinstance(obj, type)
            and issubclass(obj, Strategy)
            and obj is not Strategy
            and obj.__module__ == namespace.get("__name__")
        ]
        if len(classes) != 1:
            raise StrategyError(
                f"{filename}: define schema() and on_bar(ctx, i) (or on_book/on_quote), "
                "or exactly one Strategy subclass"
            )
        hooks = classes[0]()
        schema = classes[0].schema()
    schema = check_schema(schema)
    return LoadedStrategy(
        schema,
        getattr(hooks, "on_init", None),
        getattr(hooks, "on_bar", None) or _no_bar,
        getattr(hooks, "on_order", None),
        getattr(hooks, "on_trade", None),
        getattr(hooks, "on_finish", None),
        source,
        getattr(hooks, "on_book", None),
        getattr(hooks, "on_quote", None),
        getattr(hooks, "wake", None),
        getattr(hooks, "on_open", None),
    )
