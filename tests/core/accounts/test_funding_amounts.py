"""Funding amounts and the funding schedule, hand-computed (issue 25)."""

from __future__ import annotations

import pytest

from tests.core.test_book_venue import Recorder
from tidemark.core.accounts.funding import FundingActor, FundingError
from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.bus import QUIET_FOREVER, Bus, BusFault
from tidemark.core.events import (
    Bar,
    FundingApplied,
    FundingRate,
    FundingUnavailable,
    InstrumentDefinition,
    MarkPrice,
    OrderFilled,
    Timer,
)

H = 3_600_000_000_000
I8 = 8 * H
T = 1_000 * I8  # a funding time on the 8h grid
LINEAR = InstrumentDefinition(
    0, "ETH-PERP", kind="perpetual", base="ETH", quote="USDT", settle="USDT", contract_size=0.01, multiplier=2.0
)
INVERSE = InstrumentDefinition(
    0, "BTCUSD", kind="perpetual", base="BTC", quote="USD", settle="BTC", inverse=True, contract_size=100.0
)
FUTURE = InstrumentDefinition(0, "ETH-FUT", kind="future", base="ETH", quote="USDT", settle="USDT", expiry=2 * T)


def make(**kw: object) -> tuple[Bus, Recorder, Portfolio, FundingActor]:
    sink = Recorder()
    bus = Bus(sink)
    portfolio = Portfolio(100_000.0, "USDT")
    for inst in (LINEAR, INVERSE, FUTURE):
        portfolio.add_instrument(inst)
    actor = FundingActor(portfolio, **kw)  # type: ignore[arg-type]
    bus.add(actor)
    bus.start()
    return bus, sink, portfolio, actor


def hold(portfolio: Portfolio, instrument: str, quantity: float, price: float, strategy: str = "s") -> None:
    side = "buy" if quantity > 0 else "sell"
    portfolio.apply_fill(
        OrderFilled(1, strategy, "o", "f", instrument, side, abs(quantity), price, 1, 0.0, "taker", 0.0)
    )


def applied(sink: Recorder) -> list[tuple[str, str, float, float, float, float, str, str]]:
    return [
        (e.strategy, e.instrument, e.quantity, e.rate, e.mark, e.amount, e.currency, e.source)
        for e in sink.of(FundingApplied)
    ]


def test_linear_long_pays_and_short_receives_with_size_and_multiplier() -> None:
    bus, sink, pf, _ = make()
    hold(pf, "ETH-PERP", 3.0, 2_000.0, "a")
    hold(pf, "ETH-PERP", -5.0, 2_000.0, "b")
    bus.feed(MarkPrice(T, "ETH-PERP", 2_500.0))
    bus.feed(FundingRate(T, "ETH-PERP", 0.0004))
    long_amount = -3.0 * 0.01 * 2.0 * 2_500.0 * 0.0004  # -0.06
    short_amount = 5.0 * 0.01 * 2.0 * 2_500.0 * 0.0004  # +0.1
    assert applied(sink) == [
        ("a", "ETH-PERP", 3.0, 0.0004, 2_500.0, pytest.approx(long_amount, rel=1e-12), "USDT", "feed"),
        ("b", "ETH-PERP", -5.0, 0.0004, 2_500.0, pytest.approx(short_amount, rel=1e-12), "USDT", "feed"),
    ]
    assert long_amount == pytest.approx(-0.06) and short_amount == pytest.approx(0.1)
    assert pf.balances["USDT"] == pytest.approx(100_000.0 + 0.04, rel=1e-15)
    assert pf.ledgers["a"].funding == pytest.approx(-0.06) and pf.ledgers["b"].funding == pytest.approx(0.1)


def test_inverse_funding_is_paid_in_the_coin() -> None:
    bus, sink, pf, _ = make()
    hold(pf, "BTCUSD", 10.0, 40_000.0)
    bus.feed(MarkPrice(T, "BTCUSD", 50_000.0))
    bus.feed(FundingRate(T, "BTCUSD", -0.0003))  # negative rate: the long receives
    ((_, _, qty, rate, mark, amount, currency, source),) = applied(sink)
    assert (qty, rate, mark, currency, source) == (10.0, -0.0003, 50_000.0, "BTC", "feed")
    assert amount == pytest.approx(10 * 100 / 50_000 * 0.0003, rel=1e-12)  # 6e-6 BTC
    assert pf.balances["BTC"] == pytest.approx(6e-6, rel=1e-12)


def test_without_a_mark_the_last_close_is_used_and_named() -> None:
    bus, sink, pf, _ = make()
    hold(pf, "ETH-PERP", 1.0, 2_000.0)
    pf.marks["ETH-PERP"] = 1_800.0
    bus.feed(FundingRate(T, "ETH-PERP", 0.001))
    ((*_, mark, amount, _, source),) = applied(sink)
    assert (mark, source) == (1_800.0, "feed+close")
    assert amount == pytest.approx(-1.0 * 0.01 * 2.0 * 1_800.0 * 0.001)


def test_no_price_no_position_or_unknown_instrument_charges_nothing() -> None:
    bus, sink, pf, _ = make()
    hold(pf, "ETH-PERP", 1.0, 2_000.0)
    del pf.marks["ETH-PERP"]
    bus.feed(FundingRate(T, "ETH-PERP", 0.001))  # no mark, no close: nothing
    bus.feed(FundingRate(T, "NOPE", 0.001))
    bus.feed(FundingRate(T, "BTCUSD", 0.001))  # nobody holds it
    hold(pf, "ETH-PERP", -1.0, 2_000.0)  # flat again: the position is kept at zero
    bus.feed(MarkPrice(T, "ETH-PERP", 2_000.0))
    bus.feed(FundingRate(T, "ETH-PERP", 0.001))
    bus.feed(MarkPrice(T, "ETH-PERP", 0.0))
    hold(pf, "ETH-PERP", 1.0, 2_000.0)
    bus.feed(FundingRate(T, "ETH-PERP", 0.001))  # a zero mark: nothing
    assert applied(sink) == []


def test_a_missing_rate_after_the_interval_applies_the_fallback_once_per_funding_time() -> None:
    bus, sink, pf, actor = make(interval=I8, fallback="rate:0.001")
    hold(pf, "ETH-PERP", 1.0, 2_000.0)
    bus.feed(MarkPrice(T, "ETH-PERP", 2_000.0))
    bus.feed(FundingRate(T, "ETH-PERP", 0.0001))
    assert actor._next_due == {"ETH-PERP": T + I8}
    bus.feed(Bar(T + I8, "ETH-PERP", 2_000, 2_000, 2_000, 2_000, 1.0, H))  # at the due time: not yet missing
    assert sink.of(FundingUnavailable) == []
    bus.feed(Bar(T + 3 * I8 + 1, "ETH-PERP", 2_000, 2_000, 2_000, 2_000, 1.0, H))
    missing = sink.of(FundingUnavailable)
    assert [(m.instrument, m.funding_ts, m.fallback) for m in missing] == [
        ("ETH-PERP", T + I8, "rate:0.001"),
        ("ETH-PERP", T + 2 * I8, "rate:0.001"),
        ("ETH-PERP", T + 3 * I8, "rate:0.001"),
    ]
    sources = [(a[3], a[7]) for a in applied(sink)]
    assert sources == [(0.0001, "feed"), (0.001, "fallback"), (0.001, "fallback"), (0.001, "fallback")]
    assert actor._next_due == {"ETH-PERP": T + 4 * I8}
    assert actor.bars_quiet_until() == T + 4 * I8 + 1


def test_skip_fallback_records_the_gap_and_charges_nothing() -> None:
    bus, sink, pf, _ = make(interval=I8, fallback="skip")
    hold(pf, "ETH-PERP", 1.0, 2_000.0)
    bus.feed(FundingRate(T, "ETH-PERP", 0.0001))
    bus.feed(Bar(T + I8 + H, "ETH-PERP", 2_000, 2_000, 2_000, 2_000, 1.0, H))
    assert [m.funding_ts for m in sink.of(FundingUnavailable)] == [T + I8]
    assert len(applied(sink)) == 1


def test_error_fallback_stops_the_run() -> None:
    bus, _sink, _pf, _ = make(interval=I8)
    bus.feed(FundingRate(T, "ETH-PERP", 0.0001))
    with pytest.raises(BusFault) as caught:
        bus.feed(Bar(T + I8 + 1, "ETH-PERP", 2_000, 2_000, 2_000, 2_000, 1.0, H))
    assert isinstance(caught.value.__cause__, FundingError)


def test_a_bad_fallback_is_refused() -> None:
    with pytest.raises(ValueError, match="fallback"):
        FundingActor(Portfolio(1.0), fallback="zero")


def test_next_funding_time_from_the_rate_or_the_mark() -> None:
    bus, sink, _pf, actor = make(fallback="skip")
    bus.feed(FundingRate(T, "ETH-PERP", 0.0001, next_funding_ts=T + 4 * H))
    assert actor._next_due == {"ETH-PERP": T + 4 * H}
    bus.feed(FundingRate(T + 4 * H, "ETH-PERP", 0.0001))  # no interval, no next time: nothing due
    assert actor._next_due == {}
    assert actor.bars_quiet_until() == QUIET_FOREVER
    bus.feed(MarkPrice(T + 5 * H, "ETH-PERP", 2_000.0, next_funding_ts=T + 8 * H))
    bus.feed(MarkPrice(T + 6 * H, "ETH-PERP", 2_000.0, next_funding_ts=T + 9 * H))  # already known: kept
    assert actor._next_due == {"ETH-PERP": T + 8 * H}
    bus.feed(MarkPrice(T + 8 * H + 1, "ETH-PERP", 2_000.0))  # past it, no interval: noted once, then none due
    assert [m.funding_ts for m in sink.of(FundingUnavailable)] == [T + 8 * H]
    assert actor._next_due == {}


def test_schedule_starts_at_the_first_funding_time_after_the_definition() -> None:
    bus, _sink, _pf, actor = make(interval=I8, fallback="rate:0.0001", schedule=True)
    bus.feed(InstrumentDefinition(T, "BTCUSD", kind="perpetual", quote="USD", settle="BTC", inverse=True))
    bus.feed(InstrumentDefinition(T + H, "ETH-PERP", kind="perpetual", quote="USDT", settle="USDT"))
    bus.feed(InstrumentDefinition(T + H, "ETH-FUT", kind="future", quote="USDT", settle="USDT"))
    bus.feed(InstrumentDefinition(T + 2 * H, "ETH-PERP", kind="perpetual", quote="USDT", settle="USDT"))  # kept
    assert actor._next_due == {"BTCUSD": T + I8, "ETH-PERP": T + I8}  # T itself is not after T
    assert actor.bars_quiet_until() == T + I8 + 1


def test_schedule_needs_an_interval_and_subscriptions_follow_the_options() -> None:
    assert not FundingActor(Portfolio(1.0), schedule=True).schedule
    kinds = {cls for cls, _, _ in FundingActor(Portfolio(1.0)).subscriptions()}
    assert kinds == {MarkPrice, FundingRate}
    kinds = {cls for cls, _, _ in FundingActor(Portfolio(1.0), interval=I8, schedule=True, grace=1).subscriptions()}
    assert kinds == {MarkPrice, FundingRate, Bar, InstrumentDefinition, Timer}


def test_live_grace_charges_the_record_taken_at_the_funding_time() -> None:
    bus, sink, pf, _actor = make(grace=60_000_000_000)
    hold(pf, "ETH-PERP", 2.0, 2_000.0)
    bus.feed(MarkPrice(T - H, "ETH-PERP", 2_100.0, next_funding_ts=T))
    bus.feed(Timer(T, "funding:ETH-PERP"))
    bus.feed(Timer(T, "other"))
    bus.feed(Timer(T + 1, "funding:ETH-PERP"))  # not the time recorded: ignored
    hold(pf, "ETH-PERP", -2.0, 2_200.0)
    bus.feed(FundingRate(T + 5, "ETH-PERP", 0.001))
    assert [(a[2], a[4], a[5]) for a in applied(sink)] == [(2.0, 2_100.0, pytest.approx(-2 * 0.02 * 2_100 * 0.001))]


def test_schedule_and_timer_options() -> None:
    pf = Portfolio(1.0)
    assert FundingActor(pf, interval=I8).schedule is False  # only when asked
    assert FundingActor(pf, interval=1, schedule=True).schedule is True
    bus, _sink, _pf, actor = make(interval=I8, fallback="skip")
    bus.feed(FundingRate(T, "ETH-PERP", 0.0001))
    assert actor._timers == {}  # backtests (no grace) set no timers


def test_a_missing_rate_exactly_at_a_later_funding_time_waits_for_it() -> None:
    bus, sink, _pf, actor = make(interval=I8, fallback="skip")
    bus.feed(FundingRate(T, "ETH-PERP", 0.0001))
    bus.feed(Bar(T + 2 * I8, "ETH-PERP", 1, 1, 1, 1, 1.0, H))
    assert [m.funding_ts for m in sink.of(FundingUnavailable)] == [T + I8]
    assert actor._next_due == {"ETH-PERP": T + 2 * I8}


def test_grace_delays_the_missing_rate_and_quietness() -> None:
    grace = 60_000_000_000
    bus, sink, _pf, actor = make(interval=I8, fallback="skip", grace=grace)
    bus.feed(FundingRate(T, "ETH-PERP", 0.0001))
    assert actor._timers == {"ETH-PERP": T + I8}
    assert actor.bars_quiet_until() == T + I8 + grace + 1
    bus.feed(MarkPrice(T + 2 * I8 + grace // 2, "ETH-PERP", 2_000.0))  # T + I8 is past its grace; T + 2 I8 is not
    assert [m.funding_ts for m in sink.of(FundingUnavailable)] == [T + I8]
    assert actor._next_due == {"ETH-PERP": T + 2 * I8}


def test_a_timer_is_set_for_a_funding_time_equal_to_now() -> None:
    bus, _sink, _pf, actor = make(grace=60_000_000_000, fallback="skip")
    bus.feed(MarkPrice(T, "ETH-PERP", 2_000.0, next_funding_ts=T))
    assert actor._timers == {"ETH-PERP": T}


def test_a_cheap_contract_and_a_negative_fallback_rate() -> None:
    bus, sink, pf, _ = make(interval=I8, fallback="rate:-0.0005")
    hold(pf, "ETH-PERP", 10.0, 0.5)
    bus.feed(MarkPrice(T, "ETH-PERP", 0.5))
    bus.feed(FundingRate(T, "ETH-PERP", 0.001))
    bus.feed(Bar(T + I8 + 1, "ETH-PERP", 0.5, 0.5, 0.5, 0.5, 1.0, H))
    assert [(a[3], a[5]) for a in applied(sink)] == [
        (0.001, pytest.approx(-10 * 0.01 * 2.0 * 0.5 * 0.001)),
        (-0.0005, pytest.approx(10 * 0.01 * 2.0 * 0.5 * 0.0005)),
    ]


def test_the_record_at_a_funding_time_has_only_that_instruments_open_positions() -> None:
    bus, sink, pf, _ = make(grace=60_000_000_000)
    hold(pf, "ETH-PERP", 1.0, 2_000.0, "one")
    hold(pf, "BTCUSD", 5.0, 40_000.0, "other")
    bus.feed(MarkPrice(T - H, "ETH-PERP", 2_100.0, next_funding_ts=T))
    bus.feed(Timer(T, "funding:ETH-PERP"))
    bus.feed(FundingRate(T + 5, "ETH-PERP", 0.001))
    assert [(a[0], a[1], a[2]) for a in applied(sink)] == [("one", "ETH-PERP", 1.0)]


def test_funding_sees_the_bar_before_the_venue_fills_at_its_open() -> None:
    """Rules v2: a missing print at T charges the position held at T even when the next bar's open closes it."""
    from tidemark.core.accounts.buying_power import AccountRules
    from tidemark.core.accounts.risk import RiskEngine, RiskLimits
    from tidemark.core.events import SubmitOrder
    from tidemark.core.execution.venue import ExecutionConfig, SimulatedVenue

    sink = Recorder()
    bus = Bus(sink)
    pf = Portfolio(100_000.0, "USDT")
    pf.add_instrument(LINEAR)
    bus.add(FundingActor(pf, interval=I8, fallback="rate:0.001", schedule=True))
    bus.add(SimulatedVenue(pf, RiskEngine(RiskLimits(), pf), ExecutionConfig(account=AccountRules("unchecked"))))
    bus.start()
    bus.feed(InstrumentDefinition(T - 2 * H, "ETH-PERP", kind="perpetual", quote="USDT", settle="USDT"))
    bus.feed(Bar(T - H, "ETH-PERP", 2_000, 2_000, 2_000, 2_000, 1.0, H))
    hold(pf, "ETH-PERP", 3.0, 2_000.0)
    bus.publish(SubmitOrder(bus.now(), "s", "close", "ETH-PERP", "sell", 3.0))  # fills at the next open
    bus.feed(Bar(T + H, "ETH-PERP", 2_000, 2_000, 2_000, 2_000, 1.0, H))
    assert [(a[2], a[7]) for a in applied(sink)] == [(3.0, "fallback+close")]
    assert pf.positions[("s", "ETH-PERP")].quantity == 0.0
