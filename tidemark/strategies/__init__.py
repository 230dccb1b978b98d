"""Built-in strategies: one module per strategy, discovered by file name."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def builtin_names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))


def builtin_path(name: str) -> Path | None:
    path = HERE / f"{name}.py"
    return path if path.is_file() and not name.startswith("_") else None
