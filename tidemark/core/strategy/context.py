"""``ctx``: what a strategy sees (bars as prefix views, indicators cached
over the whole series, positions, the account) and can do (orders,
execution algorithms, logs)."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import msgspec
import numpy as np

from tidemark.core.accounts.portfolio import Portfolio, Position
from tidemark.core.config import duration_ns, format_duration
from tidemark.core.events import (
    BUY,
    SELL,
    CancelOrder,
    Log,
    ModifyOrder,
    StrategyCount,
    StrategyRecord,
    SubmitAlgo,
    SubmitBracketOrder,
    SubmitOrder,
    Ticker,
)
from tidemark.core.execution.book import OrderBook
from tidemark.core.execution.quotes import BookView
from tidemark.core.execution.venue import ExecutionConfig
from tidemark.core.ids import IdSequence
from tidemark.core.instruments import point_value, round_price, round_quantity
from tidemark.core.series import MarketSeries
from tidemark.core.strategy import indicators
from tidemark.core.strategy.contract import StrategyError

# -- ctx pieces ----------------------------------------------------------------------------


class _Source:
    """A full-length series that prefix views are cut from, with the
    indicator results computed over it (keyed by (name, *args))."""

    __slots__ = ("full", "results")

    def __init__(self, full: np.ndarray) -> None:
        self.full = full
        self.results: dict[tuple[Any, ...], tuple[np.ndarray, _Source]] = {}


def _series_method(name: str, doc: str, default: int | None = None) -> Callable[..., np.ndarray]:
    """``ctx.ind.<name>(x, n)`` for one series and one window: the per-bar hot
    path, so the lookup is inlined (no shared helper call, no varargs)."""

    def method(self: IndicatorCache, x: Any, n: int) -> np.ndarray:
        ctx = self._ctx
        source = ctx._close_source if x is ctx._close else ctx._source_of(x)
        if source is None:
            return np.asarray(indicators.FUNCTIONS[name](x, n))
        results = source.results
        key = (name, n)
        hit = results.get(key)
        if hit is None:
            result = _frozen(indicators.FUNCTIONS[name](source.full, n))
            hit = results[key] = (result, _Source(result))
        view = hit[0][: len(x)]
        ctx._handed.append(view)
        ctx._handed_sources.append(hit[1])
        return view

    method.__name__ = method.__qualname__ = name
    method.__doc__ = doc
    if default is not None:
        method.__defaults__ = (default,)
    return method


class IndicatorCache:
    """``ctx.ind``: indicators computed once per (source series, params).

    Arrays handed out by ``ctx`` (and by ``ctx.ind``) are remembered for the
    current bar; an indicator on one of them is computed over the full series
    once and returned as a prefix view. Any other array (one the strategy
    made) is computed directly, which is correct but O(n) per call.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._custom: dict[str, Callable[..., Any]] = {}

    def register(self, name: str, fn: Callable[..., Any]) -> None:
        """Add a custom indicator: ``fn(*arrays, *args)`` returns one value per
        element of its (equal-length) arrays, causally (value ``i`` from inputs
        up to ``i``). Like the built-ins it is computed once over the whole
        series per inputs and arguments, checked for lookahead then (the
        values over the first half of the series must not change), and
        handed out as prefix views: ``ctx.ind.<name>(...)`` or
        ``ctx.ind.compute(name, ...)``."""
        if name in indicators.FUNCTIONS or hasattr(type(self), name):
            raise ValueError(f"indicator {name!r} exists; choose another name")
        self._custom[name] = fn

    def compute(self, name: str, *inputs: Any) -> np.ndarray:
        """A registered (or built-in) indicator: leading arrays, then arguments."""
        split = next((k for k, value in enumerate(inputs) if not isinstance(value, np.ndarray)), len(inputs))
        return self._compute(name, inputs[:split], inputs[split:])

    def __getattr__(self, name: str) -> Callable[..., np.ndarray]:
        if name.startswith("_") or name not in self._custom:
            raise AttributeError(f"ctx.ind has no indicator {name!r} (register it with ctx.ind.register)")
        return lambda *inputs: self.compute(name, *inputs)

    def _function(self, name: str) -> Callable[..., Any]:
        custom = self._custom.get(name)
        return custom if custom is not None else indicators.FUNCTIONS[name]

    def _checked(self, name: str, full: tuple[np.ndarray, ...], args: tuple[Any, ...]) -> np.ndarray:
        """A custom indicator over the whole series, refused if its values
        over the first half change when the second half is hidden."""
        values = np.asarray(self._function(name)(*full, *args))
        n = len(full[0]) if full else 0
        if values.shape[:1] != (n,):
            raise StrategyError(f"indicator {name}: returned {values.shape[:1]} values for {n} inputs")
        cut = n // 2
        if cut:
            head = np.asarray(self._function(name)(*(a[:cut] for a in full), *args))
            if not np.array_equal(head, values[:cut], equal_nan=True):
                first = int(np.flatnonzero(~((head == values[:cut]) | (np.isnan(head) & np.isnan(values[:cut]))))[0])
                raise StrategyError(f"indicator {name} looks ahead: value {first} changes when later bars are hidden")
        return values

    def _compute(self, name: str, arrays: tuple[Any, ...], args: tuple[Any, ...]) -> np.ndarray:
        ctx = self._ctx
        found = [ctx._source_of(a) for a in arrays]
        if any(src is None for src in found) or len({len(a) for a in arrays}) != 1:
            return np.asarray(self._function(name)(*arrays, *args))
        sources = [src for src in found if src is not None]
        first = sources[0]
        # a custom function is part of the key: sources (and their results)
        # are shared by every run over the same market (see _market_sources)
        key = (name, self._custom.get(name), *(id(src) for src in sources[1:]), *args)
        hit = first.results.get(key)
        if hit is None:
            full = tuple(src.full for src in sources)
            values = self._checked(name, full, args) if name in self._custom else self._function(name)(*full, *args)
            result = _frozen(values)
            hit = first.results[key] = (result, _Source(result))
        view = hit[0][: len(arrays[0])]
        ctx._handed.append(view)
        ctx._handed_sources.append(hit[1])
        return view

    sma = _series_method("sma", "Simple moving average over ``n`` bars.")
    ema = _series_method("ema", "EMA, alpha 2/(n+1), seeded with the first value.")
    rsi = _series_method("rsi", "Wilder RSI over ``n`` bars (0..100).", default=14)

    def atr(self, high: Any, low: Any, close: Any, n: int = 14) -> np.ndarray:
        return self._compute("atr", (high, low, close), (n,))

    stdev = _series_method("stdev", "Sample standard deviation over ``n`` bars.")
    ewm_vol = _series_method("ewm_vol", "EWM standard deviation of simple returns (span ``n``).")

    def correlation(self, a: Any, b: Any, n: int) -> np.ndarray:
        return self._compute("correlation", (a, b), (n,))

    highest = _series_method("highest", "Highest value over ``n`` bars.")
    lowest = _series_method("lowest", "Lowest value over ``n`` bars.")

    def crossover(self, a: Any, b: Any) -> np.ndarray:
        return self._compute("crossover", (a, b), ())

    def crossunder(self, a: Any, b: Any) -> np.ndarray:
        return self._compute("crossunder", (a, b), ())

    def returns(self, x: Any) -> np.ndarray:
        return self._compute("returns", (x,), ())


def _frozen(values: Any) -> np.ndarray:
    """Cached results are shared by every later call: make them read-only."""
    array = np.array(values)
    array.flags.writeable = False
    return array


FILL_TYPES = {"close": "market_on_close", "open": "market_on_open"}
"""``fill=`` of ``ctx.order``: the order type that times a market order."""


_SHARED_SOURCES: weakref.WeakKeyDictionary[MarketSeries, dict[str, dict[str, _Source]]] = weakref.WeakKeyDictionary()
"""Indicator sources of each finished market still in use, by market object."""


def _market_sources(market: MarketSeries, symbol: str) -> dict[str, _Source]:
    """One instrument's bar fields as indicator sources.

    A finished market's sources are kept on the market object, so every run
    over it in this process (the points of a sweep in one worker) shares the
    indicators computed over them: each built-in (name, window) over a
    series is computed once per worker, not once per run. The results are
    read-only arrays that depend only on the data (custom indicators are
    keyed by their function, so runs never share those). A live market gets
    fresh sources: its arrays grow."""
    cache = None if market.live else _SHARED_SOURCES.setdefault(market, {})
    if cache is not None and symbol in cache:
        return cache[symbol]
    series = market.instruments[symbol]
    sources = {
        "time": _Source(market.timeline),
        "open": _Source(series.open),
        "high": _Source(series.high),
        "low": _Source(series.low),
        "close": _Source(series.close),
        "volume": _Source(series.volume),
        "present": _Source(series.present),
    }
    if cache is not None:
        cache[symbol] = sources
    return sources


class SymbolData:
    """Per-instrument views for ``ctx.data[symbol]`` (same names as ctx)."""

    def __init__(self, ctx: Context, symbol: str, market: MarketSeries) -> None:
        self._ctx = ctx
        self.symbol = symbol
        self._market = market
        self._resampled: dict[str, ResampledData] = {}
        self._sources = _market_sources(market, symbol)
        self._arrays = {name: src.full for name, src in self._sources.items()}

    def _view(self, name: str) -> np.ndarray:
        ctx = self._ctx
        key = (self.symbol, name)
        view = ctx._views.get(key)
        if view is None:
            source = self._sources[name]
            view = ctx._views[key] = source.full[: ctx._n]
            ctx._handed.append(view)
            ctx._handed_sources.append(source)
        return view

    time = property(lambda self: self._view("time"))
    open = property(lambda self: self._view("open"))
    high = property(lambda self: self._view("high"))
    low = property(lambda self: self._view("low"))
    close = property(lambda self: self._view("close"))
    volume = property(lambda self: self._view("volume"))
    present = property(lambda self: self._view("present"))

    @property
    def bars(self) -> np.ndarray:
        """``(n, 6)`` array: time, open, high, low, close, volume."""
        cols = [
            self._arrays[k][: self._ctx._n].astype(float) for k in ("time", "open", "high", "low", "close", "volume")
        ]
        return np.column_stack(cols)

    @property
    def position(self) -> PositionView:
        return self._ctx.position_of(self.symbol)

    def resample(self, timeframe: str) -> ResampledData:
        """Coarser bars of this symbol (``"4h"``), built causally from the
        run's bars: see :class:`ResampledData`. Computed once per timeframe."""
        found = self._resampled.get(timeframe)
        if found is None:
            found = self._resampled[timeframe] = ResampledData(self._ctx, self.symbol, self._market, timeframe)
        return found


class ResampledData:
    """Bars of ``timeframe`` built from a symbol's finer bars, never shown
    before they close.

    Buckets are aligned to the epoch (UTC: a 4h bar opens at 00:00, 04:00,
    ...); a coarse bar holds the finer bars that open in its bucket (open of
    the first, highest high, lowest low, close of the last, summed volume)
    and is shown from the first step at or after its close time, so at step
    ``i`` the arrays hold only the coarse bars that have closed by then (the
    one in progress is not there). ``time`` is each bar's close time (ns).
    ``ctx.ind`` caches indicators over them like over any series."""

    FIELDS = ("time", "open", "high", "low", "close", "volume")

    def __init__(self, ctx: Context, symbol: str, market: MarketSeries, timeframe: str) -> None:
        if market.live:
            raise ValueError("resample needs the whole series: it works in backtests, not in live sessions")
        series = market.instruments[symbol]
        interval = duration_ns(timeframe)
        if interval <= series.interval or interval % series.interval:
            raise ValueError(
                f"resample({timeframe!r}): must be a multiple of the {format_duration(series.interval)} bars "
                "it is built from"
            )
        self._ctx = ctx
        self.symbol = symbol
        self.timeframe = timeframe
        present = series.present
        opens = market.timeline[present] - series.interval
        bucket = opens // interval * interval
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]]) if len(bucket) else np.array([], dtype=int)
        ends = np.r_[starts[1:] - 1, len(bucket) - 1] if len(starts) else starts
        columns = {
            "time": bucket[starts] + interval,
            "open": series.open[present][starts],
            "high": np.maximum.reduceat(series.high[present], starts) if len(starts) else starts.astype(float),
            "low": np.minimum.reduceat(series.low[present], starts) if len(starts) else starts.astype(float),
            "close": series.close[present][ends],
            "volume": np.add.reduceat(series.volume[present], starts) if len(starts) else starts.astype(float),
        }
        self._sources = {name: _Source(_frozen(values)) for name, values in columns.items()}
        # per step of the run: how many coarse bars have closed by its close time
        self._closed = np.searchsorted(columns["time"], market.timeline, side="right")

    def __len__(self) -> int:
        ctx = self._ctx
        return int(self._closed[ctx._n - 1]) if ctx._n else 0

    def _view(self, name: str) -> np.ndarray:
        ctx = self._ctx
        key = (self.symbol, self.timeframe, name)
        view = ctx._views.get(key)
        if view is None:
            source = self._sources[name]
            view = ctx._views[key] = source.full[: len(self)]
            ctx._handed.append(view)
            ctx._handed_sources.append(source)
        return view

    time = property(lambda self: self._view("time"))
    open = property(lambda self: self._view("open"))
    high = property(lambda self: self._view("high"))
    low = property(lambda self: self._view("low"))
    close = property(lambda self: self._view("close"))
    volume = property(lambda self: self._view("volume"))


class PositionView(NamedTuple):
    """``ctx.position``: ``size`` (signed), ``entry_price``, ``pnl`` (unrealized),
    ``realized``. A read-only snapshot taken when read."""

    size: float
    entry_price: float
    pnl: float
    realized: float


class BookPosition(NamedTuple):
    """One open position of the shared book (``ctx.portfolio.positions()``):
    ``stop`` is its current protective stop (NaN without one); ``open_risk``
    is ``|entry_price - stop| * |size| * point value`` (NaN without a stop)."""

    strategy: str
    symbol: str
    size: float
    entry_price: float
    stop: float
    open_risk: float


class PortfolioView:
    """``ctx.portfolio``: account-level figures, computed when read, and a
    read-only view of the whole book (every strategy's positions)."""

    def __init__(
        self, portfolio: Portfolio, strategy: str, stops: Mapping[tuple[str, str], float] | None = None
    ) -> None:
        self._pf = portfolio
        self._strategy = strategy
        self._stops = stops if stops is not None else {}

    def positions(self, strategy: str | None = None) -> list[BookPosition]:
        """Open positions of every strategy (or of ``strategy``), in the order
        they were first opened."""
        out = []
        for pos in self._pf.open_positions():
            if strategy is not None and pos.strategy != strategy:
                continue
            stop = self._stops.get((pos.strategy, pos.instrument), math.nan)
            inst = self._pf.instruments[pos.instrument]
            risk = abs(pos.avg_price - stop) * abs(pos.quantity) * point_value(inst) if stop == stop else math.nan
            out.append(BookPosition(pos.strategy, pos.instrument, pos.quantity, pos.avg_price, stop, risk))
        return out

    def open_risk(self, strategy: str | None = None) -> float:
        """Money lost if every open position hit its stop, measured from entry
        (positions without a stop count nothing here; see ``positions()``)."""
        return sum(p.open_risk for p in self.positions(strategy) if p.open_risk == p.open_risk)

    @property
    def cash(self) -> float:
        return self._pf.cash()

    @property
    def equity(self) -> float:
        return self._pf.equity()

    @property
    def margin(self) -> float:
        """Initial margin posted for margined positions."""
        return self._pf.margin()

    @property
    def exposure(self) -> float:
        return self._pf.gross_exposure()

    @property
    def leverage(self) -> float:
        equity = self._pf.equity()
        return self._pf.gross_exposure() / equity if equity > 0 else 0.0

    @property
    def realized(self) -> float:
        return self._pf.converted("realized")

    @property
    def closed_equity(self) -> float:
        """Equity without open PnL: initial + realized - fees + funding."""
        return self._pf.balance()

    @property
    def strategy_exposure(self) -> float:
        return self._pf.gross_exposure(self._strategy)


class Sizer:
    """``ctx.size``: quantities from money (all for the primary instrument)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def fixed(self, amount: float) -> float:
        return float(amount)

    def percent_equity(self, pct: float, symbol: str | None = None) -> float:
        """Quantity worth ``pct`` (0.1 = 10%) of equity at the last close."""
        ctx = self._ctx
        symbol = symbol or ctx.symbol
        price = ctx.last_price(symbol)
        inst = ctx._portfolio.instruments[symbol]
        return ctx._portfolio.equity() * pct / (price * point_value(inst)) if price > 0 else 0.0

    def default(self, symbol: str | None = None) -> float:
        """Size from the run config's ``sizing``: ``fixed`` units, or
        ``percent_equity`` (value = fraction of equity)."""
        kind, value = self._ctx.sizing
        if kind == "fixed":
            return float(value)
        if kind == "percent_equity":
            return self.percent_equity(value, symbol)
        raise ValueError(f"sizing type {kind!r} needs a stop distance: use ctx.size.risk(risk_pct, stop_distance)")

    def risk(self, risk_pct: float, stop_distance: float, symbol: str | None = None) -> float:
        """Quantity that loses ``risk_pct`` of equity if price moves ``stop_distance``."""
        ctx = self._ctx
        inst = ctx._portfolio.instruments[symbol or ctx.symbol]
        if stop_distance <= 0:
            return 0.0
        return ctx._portfolio.equity() * risk_pct / (stop_distance * point_value(inst))


class StrategyLog:
    """``ctx.log``: lines become Log events in the journal."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def _emit(self, level: str, message: str) -> None:
        ctx = self._ctx
        ctx._bus.publish(Log(ctx._bus.now(), ctx.strategy_id, level, str(message)))

    def info(self, message: str) -> None:
        self._emit("info", message)

    def warn(self, message: str) -> None:
        self._emit("warning", message)

    warning = warn

    def error(self, message: str) -> None:
        self._emit("error", message)


class Context:
    """``ctx``: what a strategy sees and can do. See the module docstring."""

    def __init__(
        self,
        strategy_id: str,
        symbols: list[str],
        params: dict[str, Any],
        market: MarketSeries,
        portfolio: Portfolio,
        bus: Any,
        stops: Mapping[tuple[str, str], float] | None = None,
    ) -> None:
        self.strategy_id = strategy_id
        self.sizing: tuple[str, float] = ("fixed", 1.0)
        self.contract_rules = False
        """Round orders to lots and ticks (rules version 2; set by the runner)."""
        self.costs = ExecutionConfig()
        """The run's fill, fee and slippage models (set by the runner)."""
        self.symbols = symbols
        self.symbol = symbols[0]
        self.params = params
        self.state: dict[str, Any] = {}
        self._market = market
        self._portfolio = portfolio
        self._bus = bus
        self._n = 0
        self._views: dict[Any, np.ndarray] = {}
        # views handed out during the current bar and what they were cut from
        # (held, so identity is unambiguous; cleared at the next bar)
        self._handed: list[np.ndarray] = []
        self._handed_sources: list[_Source] = []
        self._ids = IdSequence(strategy_id)
        self._opening = -1  # the step opening now, during on_open
        self._submitted: dict[str, tuple[str, str]] = {}  # order id -> (symbol, side), for modify
        self.data = {s: SymbolData(self, s, market) for s in market.symbols}
        self._primary = self.data[self.symbol]
        self._close: np.ndarray | None = None
        self._close_source = self._primary._sources["close"]
        self.ind = IndicatorCache(self)
        self.size = Sizer(self)
        self.log = StrategyLog(self)
        self.logger = self.log
        self.portfolio = PortfolioView(portfolio, strategy_id, stops)
        self._books: dict[str, BookView] = {}
        self._tickers: dict[str, Ticker] = {}

    # -- bar bookkeeping (runtime only) --------------------------------------------------

    def _move_to(self, n: int) -> None:
        """Show the first ``n`` steps: drop the views handed out before (held
        until now, so the identity checks of ``ctx.ind`` cannot be fooled)."""
        self._n = n
        self._close = None
        if self._views or self._handed:
            self._views.clear()
            self._handed.clear()
            self._handed_sources.clear()

    def _source_of(self, x: Any) -> _Source | None:
        """The series a view handed out this bar was cut from (None: not ours)."""
        if x is self._close:
            return self._close_source
        handed = self._handed
        for k in range(len(handed) - 1, -1, -1):
            if handed[k] is x:
                return self._handed_sources[k]
        return None

    def _refresh(self) -> None:
        """A live series grew: indicator results over it are out of date."""
        for data in self.data.values():
            for source in data._sources.values():
                source.results.clear()

    def _primary_view(self, name: str) -> np.ndarray:
        if name == "close":
            return self.close
        view = self._views.get(name)
        if view is None:
            source = self._primary._sources[name]
            view = self._views[name] = source.full[: self._n]
            self._handed.append(view)
            self._handed_sources.append(source)
        return view

    # -- data ---------------------------------------------------------------------------

    @property
    def i(self) -> int:
        return self._n - 1

    def taker_price(self, side: str, price: float, symbol: str | None = None) -> float:
        """``price`` as a taker order on ``side`` would fill at it under the
        run's slippage model (what sizing at an expected fill needs)."""
        inst = self._portfolio.instruments[symbol or self.symbol]
        return self.costs.slippage.apply(inst, side, price)[0]

    def fee(self, symbol: str | None, quantity: float, price: float, *, maker: bool = False) -> float:
        """The fee the run's fee model charges a fill (settlement currency)."""
        inst = self._portfolio.instruments[symbol or self.symbol]
        return self.costs.fees.fee(inst, quantity, price, maker)[0]

    def opening(self, symbol: str | None = None) -> float:
        """In ``on_open``: the open price of the step opening now (NaN where
        ``symbol`` has no bar at it). Only there: elsewhere it is the future."""
        if self._opening < 0:
            raise StrategyError("ctx.opening() is the open of the step in on_open; in on_bar use ctx.open[-1]")
        return float(self._market.instruments[symbol or self.symbol].open[self._opening])

    @property
    def steps(self) -> int | None:
        """Time steps of the whole backtest (None in a live session)."""
        return None if self._market.live else len(self._market.timeline)

    @property
    def end(self) -> int | None:
        """Close time (ns) of the backtest's last step (None in a live
        session): when a final unwind has to start."""
        return None if self._market.live else int(self._market.timeline[-1])

    @property
    def is_last(self) -> bool:
        """True at the last step of a backtest: an order with ``fill="close"``
        still fills (at this close); a next-open order never would."""
        return not self._market.live and self._n == len(self._market.timeline)

    def record(self, name: str, value: float) -> None:
        """Journal ``value`` as this strategy's ``name`` at this step (an extra
        equity column: open risk, a risk scalar); ``Result.records``."""
        self._bus.publish(StrategyRecord(self._bus.now(), self.strategy_id, name, float(value)))

    def count(self, name: str, key: str = "", n: int = 1) -> None:
        """Count ``n`` more of ``name`` for ``key`` (rejections by reason, a
        signal pipeline); journaled, totals in ``Result.counters``."""
        self._bus.publish(StrategyCount(self._bus.now(), self.strategy_id, name, key, int(n)))

    @property
    def now(self) -> int:
        """Current bus time (ns): the close time of the current bar."""
        return int(self._bus.now())

    @property
    def close(self) -> np.ndarray:
        """Closes up to and including the current bar."""
        view = self._close
        if view is None:
            view = self._close = self._views["close"] = self._close_source.full[: self._n]
        return view

    time = property(lambda self: self._primary_view("time"))
    open = property(lambda self: self._primary_view("open"))
    high = property(lambda self: self._primary_view("high"))
    low = property(lambda self: self._primary_view("low"))
    volume = property(lambda self: self._primary_view("volume"))
    bars = property(lambda self: self._primary.bars)

    def book(self, symbol: str | None = None) -> BookView:
        """The order book of ``symbol`` (default: the first) as the venue
        matches on it; stale before the first snapshot. Sessions on books only."""
        symbol = symbol or self.symbol
        view = self._books.get(symbol)
        if view is None:
            view = self._books[symbol] = BookView(OrderBook(symbol))
        return view

    def ticker(self, symbol: str | None = None) -> Ticker | None:
        """The exchange's last ticker for ``symbol`` (live sessions; None before the first)."""
        return self._tickers.get(symbol or self.symbol)

    def last_price(self, symbol: str | None = None) -> float:
        symbol = symbol or self.symbol
        mark = self._portfolio.marks.get(symbol)
        return float(mark) if mark is not None else float("nan")

    # -- positions ------------------------------------------------------------------------

    def position_of(self, symbol: str) -> PositionView:
        pos: Position | None = self._portfolio.positions.get((self.strategy_id, symbol))
        if pos is None or pos.quantity == 0.0:
            return PositionView(0.0, 0.0, 0.0, pos.realized if pos is not None else 0.0)
        return PositionView(pos.quantity, pos.avg_price, self._portfolio.unrealized_of(pos), pos.realized)

    @property
    def position(self) -> PositionView:
        return self.position_of(self.symbol)

    # -- orders ------------------------------------------------------------------------------

    def order(
        self,
        side: str,
        size: float,
        price: float | None = None,
        type: str | None = None,
        tif: str = "GTC",
        *,
        symbol: str | None = None,
        trigger: float | None = None,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        post_only: bool = False,
        reduce_only: bool = False,
        expire_ts: int = 0,
        risk_price: float | None = None,
        tag: str = "",
        fill: str | None = None,
        take_profit_size: float | None = None,
        stop_loss_size: float | None = None,
    ) -> str:
        """Send an order; returns its id. ``type`` defaults to market, or
        limit when ``price`` is given; a ``stop`` takes its trigger from
        ``trigger`` or ``price``. ``fill`` times a market order whatever the
        run's fill model: ``"close"`` at the close of the current bar
        (``market_on_close``), ``"open"`` at the next open
        (``market_on_open``). With ``stop_loss``/``take_profit`` the order is
        a bracket; ``take_profit_size``/``stop_loss_size`` cap what each exit
        closes (a partial take-profit), the other exit keeps the rest.

        Under the contract rules the order is made valid for the instrument:
        ``size`` rounds down to the lot size (a size below one lot is sent
        as it is, and refused), limit prices round to the tick away from the
        market (buys down, sells up), stop triggers toward protection (buy
        stops up, sell stops down), and a bracket's exits likewise."""
        kind = type or ("limit" if price is not None else "market")
        if fill is not None:
            if kind != "market" or fill not in FILL_TYPES:
                raise ValueError(f"fill={fill!r}: a market order times its fill with 'close' or 'open'")
            kind = FILL_TYPES[fill]
        elif kind == "market" and self._opening >= 0 and tif == "GTC":
            tif = "OPG"  # sent in on_open: fills at the open of the step opening now
        limit = 0.0
        stop = float(trigger or 0.0)
        if kind == "limit":
            limit = float(price or 0.0)
        elif kind == "stop":
            stop = float(trigger if trigger is not None else (price or 0.0))
        elif kind == "stop_limit":
            limit = float(price or 0.0)
        symbol = symbol or self.symbol
        size = float(size)
        loss, profit = float(stop_loss or 0.0), float(take_profit or 0.0)
        inst = self._portfolio.instruments.get(symbol) if self.contract_rules else None
        if inst is not None:
            buy = side == BUY
            size = round_quantity(inst, size) or size
            limit = round_price(inst, limit, up=not buy)
            stop = round_price(inst, stop, up=buy)
            loss = round_price(inst, loss, up=not buy)  # the exit's stop: a sell stop for a long
            profit = round_price(inst, profit, up=buy)  # the exit's limit: a sell limit for a long
        order_id = self._ids.next()
        self._submitted[order_id] = (symbol, side)
        command = SubmitOrder(
            self._bus.now(),
            self.strategy_id,
            order_id,
            symbol,
            side,
            size,
            order_type=kind,
            price=limit,
            trigger_price=stop,
            tif=tif,
            expire_ts=expire_ts,
            post_only=post_only,
            reduce_only=reduce_only,
            stop_loss=loss,
            take_profit=profit,
            risk_price=float(risk_price or 0.0),
            tag=tag,
        )
        if take_profit_size is not None or stop_loss_size is not None:
            caps = (float(take_profit_size or 0.0), float(stop_loss_size or 0.0))
            if inst is not None:
                caps = (round_quantity(inst, caps[0]), round_quantity(inst, caps[1]))
            fields = msgspec.structs.asdict(command)
            command = SubmitBracketOrder(**fields, take_profit_quantity=caps[0], stop_loss_quantity=caps[1])
        self._bus.publish(command)
        return order_id

    def buy(self, size: float, price: float | None = None, type: str | None = None, tif: str = "GTC", **kw: Any) -> str:
        return self.order(BUY, size, price, type, tif, **kw)

    def sell(
        self, size: float, price: float | None = None, type: str | None = None, tif: str = "GTC", **kw: Any
    ) -> str:
        return self.order(SELL, size, price, type, tif, **kw)

    def bracket(
        self,
        side: str,
        size: float,
        *,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        price: float | None = None,
        **kw: Any,
    ) -> str:
        """Entry with a stop-loss and/or a take-profit, one cancels the other
        (``take_profit_size``: a partial take-profit; the stop keeps the rest).
        The exits are ``<id>.sl`` and ``<id>.tp``: ``ctx.modify`` moves them."""
        if not (stop_loss or take_profit):
            raise ValueError("bracket: give stop_loss, take_profit or both")
        return self.order(side, size, price, stop_loss=stop_loss, take_profit=take_profit, **kw)

    def cancel(self, order_id: str) -> None:
        self._bus.publish(CancelOrder(self._bus.now(), self.strategy_id, order_id))

    def modify(
        self, order_id: str, *, price: float | None = None, stop: float | None = None, size: float | None = None
    ) -> None:
        """Change a working order's limit ``price``, ``stop`` (trigger) or total
        ``size`` (at least what has filled); a bracket exit keeps its
        one-cancels-other link (a trailing stop: ``modify(f"{entry}.sl",
        stop=new)``). Refused (``modify_not_working``) once the order is done."""
        order = self._submitted.get(order_id)
        parent = self._submitted.get(order_id[:-3]) if order is None and order_id[-3:] in (".sl", ".tp") else None
        if parent is not None:  # a bracket exit: the other side of its entry
            order = (parent[0], SELL if parent[1] == BUY else BUY)
        inst = self._portfolio.instruments.get(order[0]) if order is not None and self.contract_rules else None
        new_price, new_stop, new_size = float(price or 0.0), float(stop or 0.0), float(size or 0.0)
        if inst is not None and order is not None:
            buy = order[1] == BUY
            new_price = round_price(inst, new_price, up=not buy)
            new_stop = round_price(inst, new_stop, up=buy)
            new_size = round_quantity(inst, new_size) or new_size
        self._bus.publish(ModifyOrder(self._bus.now(), self.strategy_id, order_id, new_size, new_price, new_stop))

    def flatten(self, symbol: str | None = None, *, fill: str | None = None) -> str | None:
        """Close this strategy's position in ``symbol`` at market (``fill``:
        ``"close"`` at this bar's close, e.g. a time stop or the last bar)."""
        symbol = symbol or self.symbol
        size = self.position_of(symbol).size
        if size == 0.0:
            return None
        return self.order(SELL if size > 0 else BUY, abs(size), symbol=symbol, reduce_only=True, fill=fill)

    def target_quantity(self, quantity: float, symbol: str | None = None, *, min_change: float = 0.0) -> str | None:
        """Trade the difference between ``quantity`` (signed) and the position."""
        symbol = symbol or self.symbol
        delta = quantity - self.position_of(symbol).size
        if abs(delta) <= min_change or delta == 0.0:
            return None
        return self.order(BUY if delta > 0 else SELL, abs(delta), symbol=symbol)

    def target_percent(self, pct: float, symbol: str | None = None, **kw: Any) -> str | None:
        """Hold ``pct`` of equity (signed; -0.5 = short half) in ``symbol``."""
        symbol = symbol or self.symbol
        price = self.last_price(symbol)
        if not price > 0:
            return None
        inst = self._portfolio.instruments[symbol]
        quantity = self._portfolio.equity() * pct / (price * point_value(inst))
        return self.target_quantity(quantity, symbol, **kw)

    # -- execution algorithms ---------------------------------------------------------------

    def algo(
        self,
        side: str,
        size: float,
        *,
        algo: str = "twap",
        symbol: str | None = None,
        slots: int = 1,
        interval: int = 0,
        start: int | None = None,
        weights: Iterable[float] = (),
        participation: float = 0.0,
        tag: str = "",
        child_type: str = "market",
        offsets: Iterable[float] = (),
    ) -> str:
        """Hand ``size`` to an execution algorithm (see :mod:`tidemark.core.execution.algos`); returns its id.
        ``child_type="limit"`` works IOC limits priced ``close +/- offsets[k] *
        (high - low)`` of the bar just closed (``k``: children in a row that
        missed), e.g. seed 002's ladder ``offsets=(0.75, 0.5, 0.75)``; the
        last slot sweeps at market."""
        symbol = symbol or self.symbol
        inst = self._portfolio.instruments.get(symbol) if self.contract_rules else None
        size = (round_quantity(inst, size) or size) if inst is not None else float(size)
        algo_id = self._ids.next() + ".algo"
        bus = self._bus
        bus.publish(
            SubmitAlgo(
                bus.now(),
                self.strategy_id,
                algo_id,
                symbol,
                side,
                float(size),
                algo=algo,
                start_ts=int(start if start is not None else bus.now()),
                slots=int(slots),
                slot_interval=int(interval),
                weights=tuple(float(w) for w in weights),
                participation=float(participation),
                tag=tag,
                child_type=child_type,
                offsets=tuple(float(o) for o in offsets),
            )
        )
        return algo_id

    def twap(self, side: str, size: float, *, slots: int, interval: int, **kw: Any) -> str:
        """TWAP over ``slots`` slots of ``interval`` ns (optionally ``weights``, ``participation``)."""
        return self.algo(side, size, algo="twap", slots=slots, interval=interval, **kw)

    def pov(self, side: str, size: float, *, participation: float, **kw: Any) -> str:
        """Percent of volume: ``participation`` of each bar's volume until done."""
        return self.algo(side, size, algo="pov", participation=participation, **kw)

    def instrument(self, symbol: str | None = None) -> Any:
        """The InstrumentDefinition of ``symbol`` (kind, expiry, contract size, ...)."""
        return self._portfolio.instruments[symbol or self.symbol]

    def point_value(self, symbol: str | None = None) -> float:
        """Money per 1.0 price move per contract (contract size x multiplier)."""
        return point_value(self._portfolio.instruments[symbol or self.symbol])

    def coin_exposure(self, symbol: str) -> float:
        """Signed base-currency exposure of this strategy's position in ``symbol``
        (inverse: contracts * size / price; linear: quantity * size * multiplier)."""
        inst = self._portfolio.instruments[symbol]
        size = self.position_of(symbol).size
        if inst.inverse:
            price = self.last_price(symbol)
            return size * inst.contract_size / price if price > 0 else 0.0
        return size * inst.contract_size * inst.multiplier

    def contracts_for(self, symbol: str, coin: float) -> float:
        """Contracts of ``symbol`` worth ``coin`` units of its base at the last price."""
        inst = self._portfolio.instruments[symbol]
        if inst.inverse:
            contracts = coin * self.last_price(symbol) / inst.contract_size
        else:
            contracts = coin / (inst.contract_size * inst.multiplier)
        if inst.lot_size > 0:
            contracts = round(contracts / inst.lot_size) * inst.lot_size
        return contracts

    def roll(
        self, old: str, new: str, *, slots: int, interval: int, coin: float | None = None, **kw: Any
    ) -> tuple[str, str] | None:
        """Move this strategy's position from ``old`` to ``new`` through a
        paired schedule (close one, open the other, same slots), sizing the new
        leg to keep the same coin exposure at the current prices, or to hold
        ``coin`` (signed base units, e.g. minus the spot held: the roll
        anchored to the spot quantity, as seed 002 sizes it)."""
        held = self.position_of(old).size
        if held == 0.0:
            return None
        target = self.contracts_for(new, self.coin_exposure(old) if coin is None else coin)
        close_side = SELL if held > 0 else BUY
        open_side = BUY if target > 0 else SELL
        first = self.twap(close_side, abs(held), symbol=old, slots=slots, interval=interval, tag="roll-close", **kw)
        second = self.twap(open_side, abs(target), symbol=new, slots=slots, interval=interval, tag="roll-open", **kw)
        return first, second

    def rehedge(self, coin_target: float, hedge: str, *, threshold: float = 0.01) -> str | None:
        """Trade ``hedge`` so its coin exposure is ``coin_target`` (signed), when it
        is off by more than ``threshold`` (fraction of the target)."""
        current = self.coin_exposure(hedge)
        if abs(current - coin_target) <= threshold * abs(coin_target):
            return None
        wanted = self.contracts_for(hedge, coin_target)
        delta = wanted - self.position_of(hedge).size
        if delta == 0.0:
            return None
        return self.order(BUY if delta > 0 else SELL, abs(delta), symbol=hedge, tag="rehedge")

    def target_weights(self, weights: dict[str, float], **kw: Any) -> list[str]:
        """Rebalance to ``{symbol: weight}``; symbols not named go flat.
        Orders go out sells first, then buys, each in symbol order."""
        held = sorted(s for (sid, s), p in self._portfolio.positions.items() if sid == self.strategy_id and p.quantity)
        targets = {s: 0.0 for s in held}
        targets.update(weights)
        equity = self._portfolio.equity()
        plan: list[tuple[float, str]] = []
        for symbol in sorted(targets):
            price = self.last_price(symbol)
            if not price > 0:
                continue
            inst = self._portfolio.instruments[symbol]
            quantity = equity * targets[symbol] / (price * point_value(inst))
            plan.append((quantity - self.position_of(symbol).size, symbol))
        ids = []
        for delta, symbol in sorted(plan, key=lambda d: (d[0] > 0, d[1])):
            order_id = self.target_quantity(self.position_of(symbol).size + delta, symbol, **kw)
            if order_id is not None:
                ids.append(order_id)
        return ids
