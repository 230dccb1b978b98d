"""The notebook API: ``tidemark.backtest(data, strategy, ...)``.

Three lines from a DataFrame and a strategy class to a Result::

    import tidemark
    result = tidemark.backtest(df, MyStrategy, cash=10_000, commission=0.001, fast=10)
    result.stats, result.plot()

``strategy`` (default: the config's strategies, else ``ema_cross``).
``data``: a path, a list of paths, a DataFrame of bars (OHLC[V] columns, a
tz-aware DatetimeIndex or time column), a list of them, or ``{symbol:
DataFrame}``. ``strategy``: a built-in name, a ``.py`` file, a
:class:`tidemark.Strategy` subclass or a module object. A class or module
defined in the notebook is journaled as source text, as a file would be: its
source (``inspect``) plus what it uses from the notebook (imports, constants,
helper functions), and the run executes that text, so the journal replays it
anywhere. What cannot be written as source (an open file, a fitted model) is
refused with a message naming it.

Keywords: any run-config field (``initial_cash``, ``commission_bps``,
``leverage``, ``fill_model``, ...), backtesting.py's names where they mean
the same (``cash``; ``commission`` as a fraction of notional; ``margin`` as
1/leverage; ``trade_on_close=True`` as close fills), and otherwise the
strategy's parameters (checked against its schema). backtesting.py keywords
tidemark does differently are refused with the tidemark equivalent.

Without ``journal=`` the journal goes to a temporary folder that is removed
when the Result is garbage collected; ``Result.save(path)`` keeps it.
"""

from __future__ import annotations

import builtins
import dis
import inspect
import os
import shutil
import sys
import sysconfig
import tempfile
import textwrap
import types
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from tidemark.adapters.backtest import DataSource, Result, build_config, run_with_results
from tidemark.adapters.universe import UniverseRule
from tidemark.core.config import RunConfig, StrategyConfig
from tidemark.core.strategy import Strategy, StrategyError, load_source

REFUSED = {
    "spread": "tidemark models costs as slippage: slippage_bps=... (or slippage={'model': 'spread', ...})",
    "exclusive_orders": "a tidemark strategy sends exactly the orders it means: flatten or target_quantity",
    "hedging": "positions are net per strategy and instrument; run two strategies for two sides",
    "finalize_trades": "open trades are valued at the last close and listed as open; flatten in on_finish",
}
CONFIG_FIELDS = frozenset(RunConfig.__struct_fields__)


def backtest(
    data: DataSource | list[DataSource] | Mapping[str, pd.DataFrame],
    strategy: str | os.PathLike[str] | type[Strategy] | types.ModuleType | None = None,
    *,
    journal: str | os.PathLike[str] | None = None,
    config: RunConfig | dict[str, Any] | str | os.PathLike[str] | None = None,
    tz: str | None = None,
    universe: UniverseRule | str | tuple[str, float] | None = None,
    **kwargs: Any,
) -> Result:
    """Run a backtest and return its :class:`Result` (see the module docstring).
    ``universe``: trade only the instruments whose data's last value of a
    column is at least a minimum (``"usd_risk_volume=5e6"`` or
    ``("usd_risk_volume", 5e6)``; recorded in the run header)."""
    rule = _universe(universe)
    sources, symbols = _sources(data)
    overrides, params = _split(kwargs)
    run_config = build_config(config, **overrides)
    if strategy is not None or not run_config.strategies:  # else the config's strategies run as given
        spec = _strategy_spec(strategy if strategy is not None else "ema_cross", params)
        run_config = build_config(run_config, strategies=[spec], strategy=None, params={})
    elif params:
        raise TypeError(f"{sorted(params)}: parameters go into each strategy of config['strategies']")
    if symbols:
        run_config = build_config(run_config, symbols=symbols)
    temporary = journal is None
    path = Path(tempfile.mkdtemp(prefix="tidemark-")) / "run.journal" if journal is None else Path(journal)
    try:
        import asyncio

        result = asyncio.run(
            run_with_results(run_config, data=sources, journal=path, overwrite=temporary, tz=tz, universe=rule)
        )
    except BaseException:
        if temporary:
            shutil.rmtree(path.parent, ignore_errors=True)
        raise
    if temporary:
        result._temporary = weakref.finalize(result, shutil.rmtree, str(path.parent), True)
    return result


def _universe(given: UniverseRule | str | tuple[str, float] | None) -> UniverseRule | None:
    if given is None or isinstance(given, UniverseRule):
        return given
    if isinstance(given, str):
        return UniverseRule.parse(given)
    column, minimum = given
    return UniverseRule(str(column), float(minimum))


def _sources(data: Any) -> tuple[list[DataSource], list[str]]:
    """Data as the runner takes it, and the symbols a mapping names."""
    if isinstance(data, Mapping):
        return list(data.values()), [str(symbol) for symbol in data]
    if isinstance(data, (str, os.PathLike, pd.DataFrame)):
        return [data], []
    if isinstance(data, (list, tuple)):
        return list(data), []
    raise TypeError(f"data: a path, a DataFrame, a list of them or {{symbol: DataFrame}}, not {type(data).__name__}")


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run-config overrides (backtesting.py's names translated) and strategy parameters."""
    overrides: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in REFUSED:
            raise TypeError(f"{key}: not a tidemark option ({REFUSED[key]})")
        if key == "cash":
            overrides["initial_cash"] = value
        elif key == "commission":
            if not isinstance(value, (int, float)):
                raise TypeError("commission: a fraction of notional (0.001 = 10 bps); use commission_bps for more")
            overrides["commission_bps"] = float(value) * 10_000.0
        elif key == "margin":
            overrides["leverage"] = 1.0 / float(value)
        elif key == "trade_on_close":
            overrides["fill_model"] = "close" if value else "next_open"
        elif key in CONFIG_FIELDS:
            overrides[key] = value
        else:
            params[key] = value
    return overrides, params


def _strategy_spec(strategy: Any, params: dict[str, Any]) -> StrategyConfig:
    if isinstance(strategy, (str, os.PathLike)):
        return StrategyConfig(strategy=str(strategy), params=params)
    source, origin = strategy_source(strategy)
    return StrategyConfig(strategy=origin, params=params, source=source, origin=origin)


# -- source of objects defined in a notebook ----------------------------------------------------


def strategy_source(obj: Any) -> tuple[str, str]:
    """``(source, origin)`` of a Strategy subclass or a module: text that
    defines the strategy on its own (loaded and checked here)."""
    if isinstance(obj, types.ModuleType):
        origin = f"module:{obj.__name__}"
        source = _source_of(obj, obj.__name__)
    elif isinstance(obj, type) and issubclass(obj, Strategy) and obj is not Strategy:
        origin = f"notebook:{obj.__name__}"
        body = textwrap.dedent(_source_of(obj, obj.__name__))
        prelude = _Prelude(vars(sys.modules.get(obj.__module__, builtins)))
        # The class statement as written: its bases (``tidemark.Strategy``), decorators,
        # class-level names and defaults as well as its methods' bodies.
        prelude.require_all(_compiled(body, obj.__name__), exclude={obj.__name__})
        source = "from tidemark import Strategy\n" + prelude.text() + "\n\n" + body
    else:
        raise StrategyError(
            f"strategy: a built-in name, a .py file, a tidemark.Strategy subclass or a module, not {obj!r}"
        )
    load_source(source, origin)  # what the journal will hold must run on its own
    return source, origin


def _source_of(obj: Any, name: str) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError) as exc:
        raise StrategyError(
            f"cannot recover the source of {name} ({exc}): the journal must hold the strategy's code; "
            "define it in a notebook cell, a module or a .py file"
        ) from None


def _nested(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _nested(const)


class _Prelude:
    """The lines that give a strategy's source the names it takes from the
    namespace it was defined in: imports, constants, helper functions."""

    PLAIN = (int, float, str, bool, type(None), bytes)

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace
        self.lines: dict[str, str] = {}
        self.functions: dict[str, str] = {}

    def require_all(self, codes: Iterator[types.CodeType], exclude: set[str]) -> None:
        for code in codes:
            for name in _globals_read(code):
                # not a tool's hidden global (@py_builtins), nor __name__ in a class body
                if name not in exclude and name.isidentifier() and not name.startswith("__"):
                    self.require(name)

    def require(self, name: str) -> None:
        if name in self.lines or name in self.functions or name not in self.namespace:
            return  # already there, or a builtin / attribute name
        value = self.namespace[name]
        if isinstance(value, types.ModuleType):
            module = value.__name__
            self.lines[name] = f"import {module}" if module == name else f"import {module} as {name}"
        elif isinstance(value, self.PLAIN) or (
            isinstance(value, tuple) and all(isinstance(v, self.PLAIN) for v in value)
        ):
            self.lines[name] = f"{name} = {value!r}"
        elif callable(value) and getattr(value, "__module__", None) not in (None, "__main__") and not _local(value):
            self.lines[name] = f"from {value.__module__} import {value.__qualname__} as {name}"
        elif isinstance(value, (types.FunctionType, type)):
            source = self.functions[name] = textwrap.dedent(_source_of(value, name))
            self.require_all(_compiled(source, name), exclude={name})
        else:
            raise StrategyError(
                f"the strategy uses {name!r} ({type(value).__name__}), which cannot be written into the "
                "journal as source; compute it inside the strategy (on_init) or pass it as a parameter"
            )

    def text(self) -> str:
        return "\n".join([*self.lines.values(), *self.functions.values()])


def _compiled(source: str, name: str) -> Iterator[types.CodeType]:
    """Every code object of ``source`` (a class or function statement)
    compiled on its own: the statement itself (bases, decorators, defaults,
    a class body's names) and, nested, each function's body."""
    return _nested(compile(source, f"<{name}>", "exec"))


def _globals_read(code: types.CodeType) -> list[str]:
    """Global names a code object reads (not attribute names, which share
    ``co_names``, nor the names a class body or module binds itself)."""
    instructions = list(dis.get_instructions(code))
    bound = {ins.argval for ins in instructions if ins.opname in ("STORE_NAME", "DELETE_NAME")}
    return [
        ins.argval
        for ins in instructions
        if ins.opname == "LOAD_GLOBAL" or (ins.opname == "LOAD_NAME" and ins.argval not in bound)
    ]


def _local(value: Any) -> bool:
    """Defined by the user (a notebook, a script, a module of theirs) rather
    than by an installed package or the standard library: its source goes
    into the journal instead of an import the replaying machine may lack."""
    name = getattr(value, "__module__", "") or ""
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if module is None or not path or name == "__main__":
        return True
    if name == "tidemark" or name.startswith("tidemark."):
        return False
    installed = {sysconfig.get_paths()[key] for key in ("purelib", "platlib", "stdlib", "platstdlib")}
    resolved = str(Path(path).resolve())
    return not any(resolved.startswith(str(Path(root).resolve())) for root in installed)
