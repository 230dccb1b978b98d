"""The strategy runtime: the module/class contract, ``ctx``, the runner actor.

Contract (module or class with the same names)::

    schema() -> dict                       # id, name, inputs
    on_init(ctx)                           # once, before the first bar
    on_bar(ctx, i)                         # i = index on the run's timeline
    on_order(ctx, event)    (optional)     # any execution report of its orders
    on_trade(ctx, fill)     (optional)     # each of its fills
    on_finish(ctx)          (optional)
    on_book(ctx, book)      (optional)     # sessions on order books: each update
    on_quote(ctx, quote)    (optional)     # ... each change of the top of book
    wake(ctx) -> bool array (optional)     # backtests: the steps on_bar runs at

``on_bar`` may be left out by a strategy that has ``on_book`` or
``on_quote``.

``wake(ctx)`` lets a strategy whose ``on_bar`` acts only on sparse signals
(crosses, breakouts) skip the other steps of a backtest. It is called once
after ``on_init`` with ``ctx`` showing the whole series and returns one bool
per step; ``on_bar`` then runs only where it is true. It must be causal: the
runtime recomputes it over prefixes of the series and refuses a mask that
changes when later bars are hidden (:data:`WAKE_PROBES`). Skipping must not
change what the strategy does (``on_bar`` must be a no-op elsewhere);
``RunConfig.wake = false`` (``--every-bar``) calls ``on_bar`` at every step
to check that. Live sessions ignore ``wake``.

Book hooks run after the venue has applied the update and are not called
while that book is stale; ``ctx.book(symbol)`` reads the book at any time
(:mod:`core.quotes`).

``ctx.open/high/low/close/volume/time`` are NumPy views that end at the
current bar: ``ctx.close[-1]`` (== ``ctx.close[i]``) is the current close.
``ctx.ind.<name>(array, ...)`` computes an indicator once over the whole
series and returns the prefix view on every later call (O(1) per call);
indicators are causal, so the view reveals nothing after the current bar.
"""

from __future__ import annotations

import types
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from tidemark.core import indicators
from tidemark.core.book import OrderBook
from tidemark.core.bus import NEEDS_EVERY_BAR, QUIET_FOREVER, Actor, Handler
from tidemark.core.events import (
    BUY,
    SELL,
    Bar,
    BookDelta,
    BookSnapshot,
    CancelOrder,
    Event,
    FeedGap,
    Log,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    RiskRejected,
    StrategyReloaded,
    SubmitAlgo,
    SubmitOrder,
    Ticker,
)
from tidemark.core.ids import IdSequence, content_id
from tidemark.core.instruments import point_value
from tidemark.core.params import check_schema, resolve
from tidemark.core.portfolio import Portfolio, Position
from tidemark.core.quotes import BookView
from tidemark.core.series import MarketSeries

WAKE_PROBES = 16
"""A wake mask is recomputed over the first k/16 of the steps (k = 1..15)
and over all but the last step, and must agree with the full mask on each.
A mask that peeks one step ahead shows at a probe's last step unless the
peeked value happens to agree, so 16 probes miss it with odds of ~2^-16."""

ORDER_EVENTS = (OrderAccepted, OrderRejected, OrderTriggered, OrderCanceled, OrderExpired, RiskRejected)


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

    @property
    def id(self) -> str:
        return str(self.schema["id"])


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
    driven = any(callable(namespace.get(hook)) for hook in ("on_bar", "on_book", "on_quote"))
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
    )


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

    def _compute(self, name: str, arrays: tuple[Any, ...], args: tuple[Any, ...]) -> np.ndarray:
        ctx = self._ctx
        found = [ctx._source_of(a) for a in arrays]
        if any(src is None for src in found) or len({len(a) for a in arrays}) != 1:
            return np.asarray(indicators.FUNCTIONS[name](*arrays, *args))
        sources = [src for src in found if src is not None]
        first = sources[0]
        key = (name, *(id(src) for src in sources[1:]), *args)
        hit = first.results.get(key)
        if hit is None:
            result = _frozen(indicators.FUNCTIONS[name](*(src.full for src in sources), *args))
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


class SymbolData:
    """Per-instrument views for ``ctx.data[symbol]`` (same names as ctx)."""

    def __init__(self, ctx: Context, symbol: str, market: MarketSeries) -> None:
        self._ctx = ctx
        self.symbol = symbol
        series = market.instruments[symbol]
        self._sources = {
            "time": _Source(market.timeline),
            "open": _Source(series.open),
            "high": _Source(series.high),
            "low": _Source(series.low),
            "close": _Source(series.close),
            "volume": _Source(series.volume),
            "present": _Source(series.present),
        }
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


class PositionView(NamedTuple):
    """``ctx.position``: ``size`` (signed), ``entry_price``, ``pnl`` (unrealized),
    ``realized``. A read-only snapshot taken when read."""

    size: float
    entry_price: float
    pnl: float
    realized: float


class PortfolioView:
    """``ctx.portfolio``: account-level figures, computed when read."""

    def __init__(self, portfolio: Portfolio, strategy: str) -> None:
        self._pf = portfolio
        self._strategy = strategy

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
    ) -> None:
        self.strategy_id = strategy_id
        self.sizing: tuple[str, float] = ("fixed", 1.0)
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
        self.data = {s: SymbolData(self, s, market) for s in market.symbols}
        self._primary = self.data[self.symbol]
        self._close: np.ndarray | None = None
        self._close_source = self._primary._sources["close"]
        self.ind = IndicatorCache(self)
        self.size = Sizer(self)
        self.log = StrategyLog(self)
        self.logger = self.log
        self.portfolio = PortfolioView(portfolio, strategy_id)
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
    ) -> str:
        """Send an order; returns its id. ``type`` defaults to market, or
        limit when ``price`` is given; a ``stop`` takes its trigger from
        ``trigger`` or ``price``."""
        kind = type or ("limit" if price is not None else "market")
        limit = 0.0
        stop = float(trigger or 0.0)
        if kind == "limit":
            limit = float(price or 0.0)
        elif kind == "stop":
            stop = float(trigger if trigger is not None else (price or 0.0))
        elif kind == "stop_limit":
            limit = float(price or 0.0)
        order_id = self._ids.next()
        self._bus.publish(
            SubmitOrder(
                self._bus.now(),
                self.strategy_id,
                order_id,
                symbol or self.symbol,
                side,
                float(size),
                order_type=kind,
                price=limit,
                trigger_price=stop,
                tif=tif,
                expire_ts=expire_ts,
                post_only=post_only,
                reduce_only=reduce_only,
                stop_loss=float(stop_loss or 0.0),
                take_profit=float(take_profit or 0.0),
                risk_price=float(risk_price or 0.0),
                tag=tag,
            )
        )
        return order_id

    def buy(self, size: float, price: float | None = None, type: str | None = None, tif: str = "GTC", **kw: Any) -> str:
        return self.order(BUY, size, price, type, tif, **kw)

    def sell(
        self, size: float, price: float | None = None, type: str | None = None, tif: str = "GTC", **kw: Any
    ) -> str:
        return self.order(SELL, size, price, type, tif, **kw)

    def bracket(
        self, side: str, size: float, *, stop_loss: float, take_profit: float, price: float | None = None, **kw: Any
    ) -> str:
        """Entry with a stop-loss and a take-profit, one cancels the other."""
        return self.order(side, size, price, stop_loss=stop_loss, take_profit=take_profit, **kw)

    def cancel(self, order_id: str) -> None:
        self._bus.publish(CancelOrder(self._bus.now(), self.strategy_id, order_id))

    def flatten(self, symbol: str | None = None) -> str | None:
        """Close this strategy's position in ``symbol`` at market."""
        symbol = symbol or self.symbol
        size = self.position_of(symbol).size
        if size == 0.0:
            return None
        return self.order(SELL if size > 0 else BUY, abs(size), symbol=symbol, reduce_only=True)

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
    ) -> str:
        """Hand ``size`` to an execution algorithm (see :mod:`core.algos`); returns its id."""
        algo_id = self._ids.next() + ".algo"
        bus = self._bus
        bus.publish(
            SubmitAlgo(
                bus.now(),
                self.strategy_id,
                algo_id,
                symbol or self.symbol,
                side,
                float(size),
                algo=algo,
                start_ts=int(start if start is not None else bus.now()),
                slots=int(slots),
                slot_interval=int(interval),
                weights=tuple(float(w) for w in weights),
                participation=float(participation),
                tag=tag,
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

    def roll(self, old: str, new: str, *, slots: int, interval: int, **kw: Any) -> tuple[str, str] | None:
        """Move this strategy's position from ``old`` to ``new`` through a
        paired schedule (close one, open the other, same slots), sizing the new
        leg to keep the same coin exposure at the current prices."""
        held = self.position_of(old).size
        if held == 0.0:
            return None
        target = self.contracts_for(new, self.coin_exposure(old))
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


# -- the runner actor --------------------------------------------------------------------------


class StrategyRunner(Actor):
    """Drives one strategy: calls ``on_bar`` once per time step in which any
    of its instruments has a bar, after the venue and portfolio handled it."""

    def __init__(
        self,
        strategy: LoadedStrategy,
        strategy_id: str,
        symbols: list[str],
        params: dict[str, Any] | None,
        market: MarketSeries,
        portfolio: Portfolio,
    ) -> None:
        self.strategy = strategy
        self.name = strategy_id
        self.symbols = symbols
        self.params = resolve(strategy.schema, params)
        self.market = market
        self.portfolio = portfolio
        self.ctx: Context | None = None
        self._live = market.live
        self._timeline = market.timeline if self._live else market.stamps
        self._step = -1
        self._last_ts: int | None = None
        self._mine = set(symbols)
        self._seen = False
        self._closed = False  # the last bar of step _step has been delivered
        self.sizing: tuple[str, float] = ("fixed", 1.0)
        self._books: dict[str, OrderBook] = {}
        self._tops: dict[str, tuple[float, float, float, float]] = {}
        self.use_wake = True
        self._wake: list[bool] | None = None
        self._wake_ts: list[int] = []  # bar times of the wake steps, ascending
        self._next_wake = 0  # index in _wake_ts of the first wake step not yet reached

    def subscriptions(self) -> Iterable[tuple[type[Event], Handler, bool]]:
        subs: list[tuple[type[Event], Handler, bool]] = [
            (Bar, self.on_bar_event, True),
            (StrategyReloaded, self.on_reload, False),
        ]
        if self._live:
            # A live session may reload code that adds hooks: take every event
            # a hook could want; the handlers check for the hook.
            subs.append((OrderFilled, self.on_fill, False))
            subs.extend((cls, self.on_order_event, False) for cls in ORDER_EVENTS)
            subs.extend(((BookSnapshot, self.on_book_event, True), (BookDelta, self.on_book_event, True)))
            subs.append((FeedGap, self.on_gap, False))
            subs.append((Ticker, self.on_ticker, False))
            return subs
        if self.strategy.on_trade is not None or self.strategy.on_order is not None:
            subs.append((OrderFilled, self.on_fill, False))
        if self.strategy.on_order is not None:
            subs.extend((cls, self.on_order_event, False) for cls in ORDER_EVENTS)
        return subs

    def on_start(self) -> None:
        self._on_bar = self.strategy.on_bar
        self.ctx = Context(self.name, self.symbols, self.params, self.market, self.portfolio, self.bus)
        self.ctx.sizing = self.sizing
        if self.strategy.on_init is not None:
            self.strategy.on_init(self.ctx)
        mask = self._wake_mask()
        if mask is not None:
            self._wake = mask.tolist()
            self._wake_ts = self.market.timeline[mask].tolist()

    def _wake_mask(self) -> np.ndarray | None:
        """The steps at which ``on_bar`` runs, from the strategy's ``wake(ctx)``
        (backtests only: a live series is not known ahead). The mask is
        computed over the whole series, then again over prefixes
        (:data:`WAKE_PROBES`); a mask that changes when later bars are hidden
        looks ahead and is refused."""
        wake = self.strategy.wake
        if wake is None or not self.use_wake or self._live:
            return None
        total = len(self._timeline)
        full = self._mask_over(wake, total)
        for cut in sorted({max(1, total * k // WAKE_PROBES) for k in range(1, WAKE_PROBES)} | {max(1, total - 1)}):
            part = self._mask_over(wake, cut)
            if not np.array_equal(part, full[:cut]):
                first = int(np.flatnonzero(part != full[:cut])[0])
                raise StrategyError(
                    f"{self.name}: wake(ctx) looks ahead: computed over the first {cut} steps it differs "
                    f"at step {first} from the mask over all {total}"
                )
        self.ctx._move_to(0)  # type: ignore[union-attr]
        return full

    def _mask_over(self, wake: Callable[[Any], Any], n: int) -> np.ndarray:
        ctx: Any = self.ctx
        ctx._move_to(n)
        mask = np.asarray(wake(ctx))
        if mask.dtype != np.bool_ or mask.shape != (n,):
            raise StrategyError(
                f"{self.name}: wake(ctx) must return {n} booleans (one per step shown), "
                f"got dtype {mask.dtype} shape {mask.shape}"
            )
        return mask

    def on_bar_event(self, bar: Bar) -> None:
        ts = bar.ts
        if ts != self._last_ts:
            self._last_ts = ts
            self._step = step = self._step + 1
            self._seen = False
            if self._timeline[step] != ts:
                raise StrategyError(f"{self.name}: bar at {ts} does not match the timeline step {step}")
        if not self._seen and bar.instrument in self._mine:
            self._seen = True
        self._closed = bar.last
        if bar.last and self._seen:
            step = self._step
            if self._wake is not None and not self._wake[step]:
                return
            ctx: Any = self.ctx
            if self._live:
                ctx._refresh()
            ctx._move_to(step + 1)
            self._on_bar(ctx, step)

    def bars_quiet_until(self) -> int:
        """Quiet until the next step of the ``wake`` mask (a strategy
        without one, or a live one, needs every bar)."""
        if self._wake is None:
            return NEEDS_EVERY_BAR
        last = self._last_ts
        if last is None:
            return 0
        wake_ts = self._wake_ts
        # the first wake step not passed: after ``last`` once its step closed
        k = (bisect_right if self._closed else bisect_left)(wake_ts, last, self._next_wake)
        self._next_wake = k
        return wake_ts[k] if k < len(wake_ts) else QUIET_FOREVER

    def skip_bars(self, latest: dict[str, Bar]) -> None:
        """Move to the step of the last bar passed, as its delivery would."""
        final = next(reversed(latest.values()))  # the last bar passed
        ts = final.ts
        if ts != self._last_ts:
            step = self._step_from(ts)
            if step >= len(self._timeline) or self._timeline[step] != ts:
                raise StrategyError(f"{self.name}: bar at {ts} is not on the run's timeline")
            self._step = step
            self._last_ts = ts
            self._seen = False
        mine = self._mine
        for bar in latest.values():
            if bar.ts == ts and bar.instrument in mine:
                self._seen = True
                break
        self._closed = final.last

    def _step_from(self, ts: int) -> int:
        """Index of the first timeline step at or after ``ts``, searched from
        the current step on (bar times never go back): a galloping search
        reads a few nearby entries, where a bisection of the whole timeline
        would touch ~20 far apart."""
        timeline = self._timeline
        n = len(timeline)
        lo = hi = self._step + 1
        gap = 1
        while hi < n and timeline[hi] < ts:  # everything before ``lo`` is before ``ts``
            lo = hi + 1
            hi += gap
            gap += gap
        return bisect_left(timeline, ts, lo, min(hi, n))

    def on_reload(self, event: StrategyReloaded) -> None:
        """Swap in new code (hot reload); state in ``ctx`` is kept. The
        adapter only journals sources that loaded, so this cannot fail on
        replay unless the source itself changed."""
        if event.strategy != self.name:
            return
        loaded = load_source(event.source, event.origin)
        resolve(loaded.schema, self.params)
        self.strategy = loaded
        self._on_bar = loaded.on_bar

    def _book(self, instrument: str) -> OrderBook:
        book = self._books.get(instrument)
        if book is None:  # the book behind ctx.book(instrument), which the strategy may already hold
            book = self._books[instrument] = self.ctx.book(instrument)._book  # type: ignore[union-attr]
        return book

    def on_book_event(self, event: BookSnapshot | BookDelta) -> None:
        """Keep this strategy's copy of the book; call ``on_book`` and, when
        the top changed, ``on_quote`` (never on a stale book)."""
        instrument = event.instrument
        if instrument not in self._mine:
            return
        book = self._book(instrument)
        if type(event) is BookSnapshot:
            book.apply_snapshot(event)
        elif book.apply_delta(event) is not None:  # type: ignore[arg-type]
            return
        strategy = self.strategy
        if book.stale or (strategy.on_book is None and strategy.on_quote is None):
            return
        ctx = self.ctx
        view = ctx._books[instrument]  # type: ignore[union-attr]
        if strategy.on_book is not None:
            strategy.on_book(ctx, view)
        if strategy.on_quote is not None:
            quote = view.quote(event.ts)
            if quote is not None:
                top = (quote.bid, quote.bid_size, quote.ask, quote.ask_size)
                if top != self._tops.get(instrument):
                    self._tops[instrument] = top
                    strategy.on_quote(ctx, quote)

    def on_ticker(self, ticker: Ticker) -> None:
        self.ctx._tickers[ticker.instrument] = ticker  # type: ignore[union-attr]

    def on_gap(self, gap: FeedGap) -> None:
        """A book reported broken by the feed is stale until its resync."""
        if gap.reason.startswith("book:") and gap.instrument in self._mine:
            book = self._book(gap.instrument)
            book.stale_reason = gap.reason
            self._tops.pop(gap.instrument, None)

    def on_fill(self, fill: OrderFilled) -> None:
        if fill.strategy != self.name:
            return
        if self.strategy.on_order is not None:
            self.strategy.on_order(self.ctx, fill)
        if self.strategy.on_trade is not None:
            self.strategy.on_trade(self.ctx, fill)

    def on_order_event(self, event: Any) -> None:
        if event.strategy == self.name and self.strategy.on_order is not None:
            self.strategy.on_order(self.ctx, event)

    def finish(self) -> None:
        if self.strategy.on_finish is not None and self.ctx is not None:
            self.strategy.on_finish(self.ctx)
