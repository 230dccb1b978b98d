"""The runner actor: drives one strategy through a run (bars, wake masks,
books, order reports, hot reload)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.bus import NEEDS_EVERY_BAR, QUIET_FOREVER, Actor, Handler
from tidemark.core.events import (
    Bar,
    BookDelta,
    BookSnapshot,
    Event,
    FeedGap,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    RiskRejected,
    StrategyReloaded,
    Ticker,
)
from tidemark.core.execution.book import OrderBook
from tidemark.core.execution.venue import ExecutionConfig
from tidemark.core.series import MarketSeries
from tidemark.core.strategy.context import Context
from tidemark.core.strategy.contract import LoadedStrategy, StrategyError, load_source
from tidemark.core.strategy.faults import describe_failure
from tidemark.core.strategy.params import resolve

WAKE_PROBES = 16
"""A wake mask is recomputed over the first k/16 of the steps (k = 1..15)
and over all but the last step, and must agree with the full mask on each.
A mask that peeks one step ahead shows at a probe's last step unless the
peeked value happens to agree, so 16 probes miss it with odds of ~2^-16."""

ORDER_EVENTS = (OrderAccepted, OrderRejected, OrderTriggered, OrderCanceled, OrderExpired, RiskRejected)


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
        self.contract_rules = False
        self.trade_from = 0
        """Close time (ns) of the first step ``on_bar`` runs at (after the warm-up)."""
        self.costs: ExecutionConfig | None = None
        """The run's execution models, for ``ctx.taker_price`` and ``ctx.fee``."""
        self.stops: dict[tuple[str, str], float] | None = None
        """Protective stops of every position (the risk engine's), for ``ctx.portfolio.positions()``."""
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
        self.ctx = Context(self.name, self.symbols, self.params, self.market, self.portfolio, self.bus, self.stops)
        self.ctx.sizing = self.sizing
        self.ctx.contract_rules = self.contract_rules
        if self.costs is not None:
            self.ctx.costs = self.costs
        try:
            if self.strategy.on_init is not None:
                self.strategy.on_init(self.ctx)
            mask = self._wake_mask()
        except StrategyError:
            raise
        except Exception as exc:  # the strategy refused its parameters or data: bad input
            raise StrategyError(f"{self.name}: cannot start: {describe_failure(exc)}") from exc
        if mask is not None:
            mask = mask & (self.market.timeline >= self.trade_from)  # no wake-up in the warm-up
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
            if ts < self.trade_from or (self._wake is not None and not self._wake[step]):
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

    def open_step(self, ts: int) -> None:
        """Step ``ts`` (its close time) opens: call ``on_open`` with ``ctx``
        showing the steps before it and the opens of this one. Backtests."""
        on_open = self.strategy.on_open
        if on_open is None or ts < self.trade_from:
            return
        step = self._step_from(ts)
        if step >= len(self._timeline) or self._timeline[step] != ts:
            return  # not a step of this strategy's timeline
        ctx: Any = self.ctx
        ctx._move_to(step)
        ctx._opening = step
        try:
            on_open(ctx, step)
        finally:
            ctx._opening = -1

    def finish(self) -> None:
        if self.strategy.on_finish is not None and self.ctx is not None:
            self.strategy.on_finish(self.ctx)
