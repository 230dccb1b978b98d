"""Perpetual funding: charge open positions at each funding time.

At a ``FundingRate`` event for instrument I at time T, every open position in
I pays (negative amount) or receives::

    linear:  amount = -quantity * contract_size * multiplier * mark * rate   [settle currency]
    inverse: amount = -quantity * contract_size / mark * rate                [coin]

so longs pay when the rate is positive. ``mark`` is the last ``MarkPrice`` at
or before T (the close of the mark candle ending at T); without one, the
last bar close is used and the event says ``source="close"``.

Convention at equal timestamps: bars, then marks, then funding, so funding at
T charges the position held at the close of the bar ending at T.

Missing rates: a funding time is *due* once known, from ``interval`` after
the last rate, a rate's ``next_funding_ts``, or a mark's ``next_funding_ts``
(live feeds announce it). When a bar or mark arrives more than ``grace`` ns
after a due time with no rate for it, a ``FundingUnavailable`` event records
the gap and the configured fallback is applied explicitly: ``rate:<x>``
charges rate x, ``skip`` charges nothing (visibly), ``error`` stops the run.
Backtests use ``grace=0``; live sessions give the settled rate time to be
published and fetched.

Rules version 2 (``schedule=True``, backtests): the schedule of a perpetual
starts at its first funding time after the run starts (multiples of
``interval`` since the epoch: 00:00, 08:00, 16:00 UTC for 8h), with or
without funding data, so a static rate (``fallback: rate`` and no data)
charges from the first funding time; and the actor sees each bar before the
venue does, so a missing print at T is charged on the position and mark
held at T even when the next bar's open closes it.

Live sessions (``grace > 0``): the settled rate arrives seconds after T, but
what pays is the position held *at* T. So a bus timer (``funding:<id>``) fires
at each known funding time and records every open position's quantity and
the last mark at or before T; the rate (or the fallback) is then charged on
that record, whatever was traded in between.
"""

from __future__ import annotations

from collections.abc import Iterable

from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.bus import QUIET_FOREVER, Actor, Handler
from tidemark.core.events import (
    Bar,
    Event,
    FundingApplied,
    FundingRate,
    FundingUnavailable,
    InstrumentDefinition,
    MarkPrice,
    Timer,
)
from tidemark.core.instruments import settle_currency


class FundingError(RuntimeError):
    """A funding rate was missing and the fallback policy is ``error``."""


class FundingActor(Actor):
    name = "funding"

    def __init__(
        self,
        portfolio: Portfolio,
        *,
        interval: int = 0,
        fallback: str = "error",
        grace: int = 0,
        schedule: bool = False,
    ) -> None:
        if fallback not in ("error", "skip") and not fallback.startswith("rate:"):
            raise ValueError(f"funding fallback must be error, skip or rate:<x>, not {fallback!r}")
        self.portfolio = portfolio
        self.interval = interval
        self.fallback = fallback
        self.grace = grace
        self.schedule = schedule and interval > 0
        self.marks: dict[str, float] = {}
        self._next_due: dict[str, int] = {}
        # live: instrument -> (funding time, mark at it, [(strategy, quantity)])
        self._held: dict[str, tuple[int, float | None, list[tuple[str, float]]]] = {}
        self._timers: dict[str, int] = {}

    def subscriptions(self) -> Iterable[tuple[type[Event], Handler, bool]]:
        subs: list[tuple[type[Event], Handler, bool]] = [
            (MarkPrice, self.on_mark, False),
            (FundingRate, self.on_rate, False),
        ]
        if self.interval:
            subs.append((Bar, self.on_bar, False))
        if self.schedule:
            subs.append((InstrumentDefinition, self.on_instrument, False))
        if self.grace:
            subs.append((Timer, self.on_timer, False))
        return subs

    def _set_due(self, instrument: str, due: int) -> None:
        self._next_due[instrument] = due
        if self.grace and self._timers.get(instrument) != due and due >= self.bus.now():
            self._timers[instrument] = due
            self.bus.clock.set_timer(f"funding:{instrument}", due)

    def on_timer(self, timer: Timer) -> None:
        """Funding time T reached (live): record what is held at T."""
        if not timer.name.startswith("funding:"):
            return
        instrument = timer.name[8:]
        if self._timers.get(instrument) != timer.ts:
            return
        held = [
            (pos.strategy, pos.quantity)
            for pos in self.portfolio.positions.values()
            if pos.instrument == instrument and pos.quantity != 0.0
        ]
        self._held[instrument] = (timer.ts, self.marks.get(instrument), held)

    def on_mark(self, event: MarkPrice) -> None:
        instrument = event.instrument
        self.marks[instrument] = event.price
        if event.next_funding_ts and instrument not in self._next_due:
            self._set_due(instrument, event.next_funding_ts)
        self._check_due(instrument, event.ts)

    def on_rate(self, event: FundingRate) -> None:
        self._charge(event.instrument, event.rate, "feed")
        due = event.next_funding_ts or (event.ts + self.interval if self.interval else 0)
        if due:
            self._set_due(event.instrument, due)
        else:
            self._next_due.pop(event.instrument, None)

    def on_instrument(self, inst: InstrumentDefinition) -> None:
        """A perpetual's schedule starts at its first funding time after ``inst.ts``."""
        if inst.kind == "perpetual" and inst.instrument not in self._next_due:
            self._set_due(inst.instrument, (inst.ts // self.interval + 1) * self.interval)

    def on_bar(self, bar: Bar) -> None:
        self._check_due(bar.instrument, bar.ts)

    def bars_quiet_until(self) -> int:
        """A bar acts only once it passes a due time and its grace."""
        due = self._next_due
        return min(due.values()) + self.grace + 1 if due else QUIET_FOREVER

    def _check_due(self, instrument: str, ts: int) -> None:
        """Funding times that passed (beyond the grace) with no rate for them
        (at equal times, bars and marks come before funding)."""
        due = self._next_due.get(instrument)
        if due is None or ts <= due + self.grace:
            return
        while due + self.grace < ts:
            self._missing(instrument, due)
            if not self.interval:
                del self._next_due[instrument]
                return
            due += self.interval
        self._set_due(instrument, due)

    def _missing(self, instrument: str, funding_ts: int) -> None:
        self.bus.publish(FundingUnavailable(self.bus.now(), instrument, funding_ts, self.fallback))
        if self.fallback == "error":
            raise FundingError(f"no funding rate for {instrument} at {funding_ts} and the fallback is 'error'")
        if self.fallback.startswith("rate:"):
            self._charge(instrument, float(self.fallback[5:]), "fallback")

    def _charge(self, instrument: str, rate: float, source: str) -> None:
        pf = self.portfolio
        inst = pf.instruments.get(instrument)
        if inst is None:
            return
        record = self._held.pop(instrument, None)
        if record is not None:  # live: what was held at the funding time, at its mark
            mark = record[1]
            held = record[2]
        else:
            mark = self.marks.get(instrument)
            held = [(p.strategy, p.quantity) for p in pf.positions.values() if p.instrument == instrument]
        mark_source = source
        if mark is None:
            mark = pf.marks.get(instrument)
            mark_source = f"{source}+close"
        if mark is None or mark <= 0:
            return
        for strategy, quantity in held:
            if quantity == 0.0:
                continue
            if inst.inverse:
                amount = -quantity * inst.contract_size / mark * rate
            else:
                amount = -quantity * inst.contract_size * inst.multiplier * mark * rate
            event = FundingApplied(
                self.bus.now(),
                strategy,
                instrument,
                quantity,
                rate,
                mark,
                amount,
                settle_currency(inst),
                mark_source,
            )
            pf.apply_funding(event)
            self.bus.publish(event)
