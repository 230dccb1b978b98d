"""tidemark: an event-sourced trading simulation engine.

One import name for everything::

    import tidemark

    result = tidemark.backtest(df, MyStrategy, cash=10_000, commission=0.001, fast=10)
    result.stats, result.trades, result.plot()

The components keep their own packages (the architecture):
``tidemark.core`` (events, bus, venues, accounts, strategy runtime),
``tidemark.journal`` (the hash-chained event store), ``tidemark.adapters``
(data, runners, CLI, reports) and ``tidemark.strategies`` (built-ins).
The names in ``__all__`` are the curated public API; they are imported on
first use, so ``import tidemark`` (and the CLI) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "backtest": "tidemark.adapters.notebook",
    "run_backtest": "tidemark.adapters.backtest",
    "Result": "tidemark.adapters.backtest",
    "Strategy": "tidemark.core.strategy",
    "RunConfig": "tidemark.core.config",
    "open_journal": "tidemark.journal.reader",
    "verify": "tidemark.journal.verify",
    "replay": "tidemark.adapters.backtest",
    "sweep": "tidemark.adapters.research.sweep",
    "SweepResult": "tidemark.adapters.research.sweep",
    "verify_sweep": "tidemark.adapters.research.proof",
    "walk_forward": "tidemark.adapters.research.walkforward",
    "WalkForwardResult": "tidemark.adapters.research.walkforward",
}

__all__ = [
    "Result",
    "RunConfig",
    "Strategy",
    "SweepResult",
    "WalkForwardResult",
    "__version__",
    "backtest",
    "open_journal",
    "replay",
    "run_backtest",
    "sweep",
    "verify",
    "verify_sweep",
    "walk_forward",
]

if TYPE_CHECKING:
    from tidemark.adapters.backtest import Result as Result
    from tidemark.adapters.backtest import replay_verified as replay
    from tidemark.adapters.backtest import run_backtest as run_backtest
    from tidemark.adapters.notebook import backtest as backtest
    from tidemark.adapters.research.proof import verify_sweep as verify_sweep
    from tidemark.adapters.research.sweep import SweepResult as SweepResult
    from tidemark.adapters.research.sweep import sweep as sweep
    from tidemark.adapters.research.walkforward import WalkForwardResult as WalkForwardResult
    from tidemark.adapters.research.walkforward import walk_forward as walk_forward
    from tidemark.core.config import RunConfig as RunConfig
    from tidemark.core.strategy import Strategy as Strategy
    from tidemark.journal.reader import JournalReader as open_journal
    from tidemark.journal.verify import verify as verify

_RENAMED = {"replay": "replay_verified", "open_journal": "JournalReader"}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tidemark' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
