"""Funding in live sessions: the position held at the funding time pays,
even when the settled rate arrives after it was traded away."""

from __future__ import annotations

import pytest

from tests.core.test_book_venue import Recorder
from tidemark.core.accounts.funding import FundingActor
from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.bus import Bus
from tidemark.core.events import (
    FundingApplied,
    FundingRate,
    FundingUnavailable,
    InstrumentDefinition,
    MarkPrice,
    OrderFilled,
)

SYM = "BTC/USDT:USDT"
S = 1_000_000_000
T = 1_000 * S  # a funding time
INSTRUMENT = InstrumentDefinition(1, SYM, kind="perpetual", base="BTC", quote="USDT", settle="USDT")


def make(fallback: str = "error") -> tuple[Bus, Recorder, Portfolio]:
    sink = Recorder()
    bus = Bus(sink)
    portfolio = Portfolio(100_000.0, "USDT")
    portfolio.add_instrument(INSTRUMENT)
    bus.add(FundingActor(portfolio, fallback=fallback, grace=60 * S))
    bus.start()
    return bus, sink, portfolio


def fill(ts: int, side: str, quantity: float, price: float) -> OrderFilled:
    return OrderFilled(ts, "s", f"o{ts}", f"f{ts}", SYM, side, quantity, price, ts, 0.0, "taker", 0.0)


@pytest.mark.parametrize(("late", "expected_source"), [(True, "feed"), (False, "fallback")])
def test_the_position_and_mark_at_the_funding_time_are_charged_when_the_rate_comes_later(
    late: bool, expected_source: str
) -> None:
    bus, sink, portfolio = make(fallback="rate:0.0002")
    portfolio.apply_fill(fill(1, "buy", 2.0, 60_000.0))  # long 2 before T
    bus.feed(MarkPrice(T - 10 * S, SYM, 60_000.0, next_funding_ts=T))
    bus.feed(MarkPrice(T - 1 * S, SYM, 60_100.0, next_funding_ts=T))  # the mark at T
    bus.feed(MarkPrice(T + 2 * S, SYM, 61_000.0, next_funding_ts=T + 8 * 3600 * S))
    portfolio.apply_fill(fill(T + 3 * S, "sell", 2.0, 61_000.0))  # flat before the rate is known
    if late:
        bus.feed(FundingRate(T + 5 * S, SYM, 0.0001, T + 8 * 3600 * S))
    else:
        bus.feed(MarkPrice(T + 61 * S, SYM, 61_000.0, next_funding_ts=T + 8 * 3600 * S))  # past the grace
        (missing,) = sink.of(FundingUnavailable)
        assert missing.funding_ts == T
    (applied,) = sink.of(FundingApplied)
    rate = 0.0001 if late else 0.0002
    assert (applied.quantity, applied.mark, applied.rate, applied.source) == (2.0, 60_100.0, rate, expected_source)
    assert applied.amount == pytest.approx(-2.0 * 60_100.0 * rate, rel=1e-15)
    assert portfolio.total.funding == applied.amount


def test_a_position_opened_after_the_funding_time_pays_nothing_for_it() -> None:
    bus, sink, portfolio = make()
    bus.feed(MarkPrice(T - 1 * S, SYM, 60_100.0, next_funding_ts=T))
    bus.feed(MarkPrice(T + 1 * S, SYM, 60_200.0, next_funding_ts=T + 8 * 3600 * S))
    portfolio.apply_fill(fill(T + 2 * S, "buy", 1.0, 60_200.0))
    bus.feed(FundingRate(T + 5 * S, SYM, 0.0001, T + 8 * 3600 * S))
    assert sink.of(FundingApplied) == []
