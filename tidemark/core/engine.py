"""Assemble the actor graph of a run and drive its inputs.

Subscription order (fixed): funding (rules version 2, so it sees a bar before
the fills it causes), the venue, the account, margin and solvency, funding
(version 1), borrowing, execution algorithms, then each strategy (late, in
config order). The same graph serves a backtest, a replay and a rerun; only
where the inputs come from differs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tidemark.core.accounts.borrow import BorrowActor
from tidemark.core.accounts.funding import FundingActor
from tidemark.core.accounts.margin import MarginActor
from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.accounts.risk import RiskEngine
from tidemark.core.bars import BarAggregator
from tidemark.core.bus import NEEDS_EVERY_BAR, Actor, Bus, EventSink, Handler
from tidemark.core.config import RunConfig, account_kind, duration_ns, execution_config, risk_limits, trading_start
from tidemark.core.events import Bar, Event, InstrumentDefinition, RunFinished, RunStarted
from tidemark.core.execution.algos import AlgoActor
from tidemark.core.execution.book_venue import BookVenue
from tidemark.core.execution.venue import SimulatedVenue
from tidemark.core.heap import settle
from tidemark.core.series import MarketSeries
from tidemark.core.strategy import LoadedStrategy, StrategyRunner


class OpeningBell(Actor):
    """Calls strategies' ``on_open`` at the first bar of each step, before
    the venue trades it (so their market orders fill at that open)."""

    name = "opening"

    def __init__(self, runners: list[StrategyRunner]) -> None:
        self.runners = [runner for runner in runners if runner.strategy.on_open is not None]
        self._last = -1

    def subscriptions(self) -> Iterable[tuple[type[Event], Handler, bool]]:
        return ((Bar, self.on_bar, False),)

    def on_bar(self, bar: Bar) -> None:
        if bar.ts != self._last:
            self._last = bar.ts
            for runner in self.runners:
                runner.open_step(bar.ts)


class AccountActor(Actor):
    """Marks positions at each close, snapshots the account at a cadence and
    feeds the risk engine's equity path when its limits need it."""

    name = "account"

    def __init__(self, portfolio: Portfolio, risk: RiskEngine, snapshot_every: int) -> None:
        self.portfolio = portfolio
        self.risk = risk
        self.snapshot_every = snapshot_every
        self._marks = portfolio.marks
        self._started = False
        self._next_bucket = 0  # ns: first close time of the next snapshot bucket
        self._watch = risk.limits.watches_equity

    def subscriptions(self) -> Iterable[tuple[type[Event], Handler, bool]]:
        return ((InstrumentDefinition, self.on_instrument, False), (Bar, self.on_bar, False))

    def on_instrument(self, event: InstrumentDefinition) -> None:
        self.portfolio.add_instrument(event)

    def on_bar(self, bar: Bar) -> None:
        """Per bar (hot): mark the close; at the last bar of a time step, feed
        the risk engine and snapshot when the step opens a new bucket."""
        self._marks[bar.instrument] = bar.close
        portfolio = self.portfolio
        if portfolio.rate_sources:
            portfolio.update_rate(bar.instrument, bar.close)
        if bar.last:
            if self._watch:
                self.risk.observe(bar.ts)
            ts = bar.ts
            if ts >= self._next_bucket:  # bucket ts // every changed (bar times never go back)
                if self._started:
                    self.bus.publish(portfolio.snapshot(ts))
                self._started = True
                every = self.snapshot_every
                self._next_bucket = (ts // every + 1) * every

    def bars_quiet_until(self) -> int:
        """Quiet until the next snapshot bucket (every bar while the risk
        engine follows equity)."""
        if self._watch:
            return NEEDS_EVERY_BAR
        return self._next_bucket if self._started else 0

    def skip_bars(self, latest: dict[str, Bar]) -> None:
        marks = self._marks
        portfolio = self.portfolio
        for instrument, bar in latest.items():
            marks[instrument] = bar.close
            if portfolio.rate_sources:
                portfolio.update_rate(instrument, bar.close)


def _margined(config: RunConfig) -> bool:
    """Whether a run can hold margined positions (so solvency is watched):
    a margin account, derivatives, funding, or a live session's markets."""
    return (
        account_kind(config) == "margin"
        or config.funding.enabled
        or config.paper is not None
        or any(spec.kind != "spot" for spec in config.instruments.values())
    )


@dataclass
class StrategySlot:
    """A strategy placed in a run: its id, instruments and parameters."""

    strategy: LoadedStrategy
    strategy_id: str
    symbols: list[str]
    params: dict[str, Any]


class Engine:
    """One run's actor graph on one bus."""

    def __init__(
        self,
        config: RunConfig,
        slots: list[StrategySlot],
        market: MarketSeries,
        *,
        sink: EventSink | None = None,
    ) -> None:
        self.config = config
        self.bus = Bus(sink)
        rules_v2 = config.version >= 2
        self.portfolio = Portfolio(config.initial_cash, config.currency, snap_to_lot=rules_v2)
        self.risk = RiskEngine(risk_limits(config), self.portfolio, current_stops=rules_v2, check_reversals=rules_v2)
        paper = config.paper
        self.venue: SimulatedVenue
        if paper is not None:
            # A book session: bars are built from trades into a growing series.
            if not market.live:
                raise ValueError("a book session needs a live series (MarketSeries.live_series)")
            self.bus.add(BarAggregator(market, duration_ns(paper.bar_interval)))
            self.venue = BookVenue(
                self.portfolio,
                self.risk,
                execution_config(config),
                latency_ns=round(paper.latency_ms * 1_000_000),
                seed=config.seed,
            )
        else:
            self.venue = SimulatedVenue(self.portfolio, self.risk, execution_config(config), seed=config.seed)
        self.account = AccountActor(self.portfolio, self.risk, duration_ns(config.snapshot_every))
        self.runners = self._runners(config, slots, market)
        funding_actor = self._funding(config)
        if funding_actor is not None and rules_v2:
            self.bus.add(funding_actor)
        if paper is None and any(runner.strategy.on_open is not None for runner in self.runners):
            self.bus.add(OpeningBell(self.runners))
        self.bus.add(self.venue)
        self.bus.add(self.account)
        if any(i.maintenance_margin > 0 for i in config.instruments.values()) or (rules_v2 and _margined(config)):
            self.bus.add(
                MarginActor(
                    self.portfolio,
                    fee_bps=config.liquidation_fee_bps,
                    mode=config.margin_mode,
                    solvency=self.venue.account if rules_v2 else None,
                )
            )
        if funding_actor is not None and not rules_v2:
            self.bus.add(funding_actor)
        self.borrow: BorrowActor | None = None
        if config.borrow_rate is not None and rules_v2:
            self.borrow = BorrowActor(self.portfolio, config.borrow_rate)
            self.bus.add(self.borrow)
        self.algos = AlgoActor(contract_rules=rules_v2)
        self.bus.add(self.algos)
        for runner in self.runners:
            self.bus.add(runner)
        self.started = False
        self.finished = False

    def _runners(self, config: RunConfig, slots: list[StrategySlot], market: MarketSeries) -> list[StrategyRunner]:
        """The strategies' runners, configured (added to the bus last)."""
        trade_from = 0
        if not market.live and market.symbols:
            interval = market.instruments[market.symbols[0]].interval
            trade_from = trading_start(config, market.stamps, interval)
        runners = []
        for slot in slots:
            runner = StrategyRunner(slot.strategy, slot.strategy_id, slot.symbols, slot.params, market, self.portfolio)
            runner.trade_from = trade_from
            runner.stops = self.risk.stops
            runner.sizing = (config.sizing.type, config.sizing.value)
            runner.use_wake = config.wake
            runner.contract_rules = config.version >= 2
            runner.costs = self.venue.config
            runners.append(runner)
        return runners

    def _funding(self, config: RunConfig) -> FundingActor | None:
        funding = config.funding
        if not funding.enabled:
            return None
        interval = duration_ns(funding.interval) if funding.interval else 0
        grace = duration_ns(config.paper.funding_grace) if config.paper is not None else 0
        return FundingActor(
            self.portfolio,
            interval=interval,
            fallback=funding.fallback_policy(),
            grace=grace,
            schedule=config.version >= 2 and config.paper is None,
        )

    def feed(self, event: Event) -> None:
        """Bring in one input; strategies start at the first market event."""
        if not self.started and not isinstance(event, (RunStarted, InstrumentDefinition)):
            self.start()
        self.bus.feed(event)

    def feed_all(self, events: Sequence[Event]) -> None:
        """Bring in inputs in order (:meth:`Bus.feed_all`: quiet stretches of
        bars pass in one step); the same journal as :meth:`feed` one by one."""
        k = 0
        while not self.started and k < len(events):
            self.feed(events[k])
            k += 1
        if k < len(events):
            self.bus.feed_all(events[k:] if k else events)

    def start(self) -> None:
        """Start the actors (strategies: parameters, ``on_init``, ``wake``).
        An error here is marked :func:`started_nothing`: the run never
        traded, and its runner leaves no journal."""
        if not self.started:
            self.started = True
            try:
                self.bus.start()
            except Exception as exc:
                with contextlib.suppress(AttributeError):
                    exc.before_start = True  # type: ignore[attr-defined]
                raise
            settle()  # the series, masks and caches the actors just built live as long as the run
            self.feed = self.bus.feed  # type: ignore[method-assign,assignment]  # started: inputs go straight to the bus

    def finish(self, status: str = "finished") -> None:
        """End of inputs: strategies' on_finish, cancel working orders, final
        snapshot, RunFinished. All are outputs (replay regenerates them)."""
        if self.finished:
            return
        self.finished = True
        self.start()
        for runner in self.runners:
            runner.finish()
        self.venue.cancel_all("run_end")
        if self.borrow is not None:
            self.borrow.settle()
        bus = self.bus
        bus.publish(self.portfolio.snapshot(bus.now()))
        bus.stop()
        bus.publish(RunFinished(bus.now(), status, bus.seq + 1))


def started_nothing(error: BaseException) -> bool:
    """True for an error raised while the run started (bad parameters, a
    strategy's ``on_init`` or ``wake``), before any market data."""
    return bool(getattr(error, "before_start", False))
