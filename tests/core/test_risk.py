"""Pre-trade risk: each limit refuses with its reason code; exits always pass."""

from __future__ import annotations

import pytest

from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.accounts.risk import DAY_NS, RiskEngine, RiskLimits
from tidemark.core.events import OrderFilled, SubmitOrder
from tidemark.core.instruments import spot


def cmd(side: str = "buy", qty: float = 1.0, strategy: str = "s", instrument: str = "X", **kw: object) -> SubmitOrder:
    return SubmitOrder(0, strategy, "o", instrument, side, qty, **kw)  # type: ignore[arg-type]


def setup(**limits: object) -> tuple[Portfolio, RiskEngine]:
    pf = Portfolio(10_000.0)
    for symbol in ("X", "Y", "Z"):
        pf.add_instrument(spot(symbol))
        pf.marks[symbol] = 100.0
    return pf, RiskEngine(RiskLimits(**limits), pf)  # type: ignore[arg-type]


def hold(pf: Portfolio, qty: float, instrument: str = "X", strategy: str = "s", price: float = 100.0) -> None:
    pf.apply_fill(
        OrderFilled(
            0, strategy, "f", "f", instrument, "buy" if qty > 0 else "sell", abs(qty), price, 0, 0.0, "taker", 0.0
        )
    )


@pytest.mark.parametrize(
    ("limits", "positions", "order", "reason"),
    [
        ({"max_positions": 2}, [("X", 1), ("Y", 1)], {"instrument": "Z"}, "max_positions"),
        ({"strategy_max_positions": {"s": 1}}, [("X", 1)], {"instrument": "Y"}, "strategy_max_positions"),
        ({"max_gross_exposure": 1.0}, [("X", 90)], {"qty": 20}, "max_gross_exposure"),
        ({"max_leverage": 1.0}, [("X", 90)], {"qty": 20}, "max_leverage"),
        ({"strategy_notional": {"s": 0.5}}, [("X", 40)], {"instrument": "Y", "qty": 20}, "strategy_notional_budget"),
        ({"max_open_risk": 0.02}, [], {"qty": 30, "risk_price": 90.0}, "max_open_risk"),
        ({"strategy_risk": {"s": 0.01}}, [], {"qty": 20, "risk_price": 90.0}, "strategy_risk_budget"),
    ],
)
def test_each_limit_refuses_with_its_reason(limits: dict, positions: list, order: dict, reason: str) -> None:
    pf, risk = setup(**limits)
    for instrument, qty in positions:
        hold(pf, qty, instrument)
    refusal = risk.check(cmd(**order), 100.0)
    assert refusal is not None and refusal[0] == reason


def test_within_limits_passes() -> None:
    pf, risk = setup(max_positions=3, max_gross_exposure=2.0, max_open_risk=0.05)
    hold(pf, 10)
    assert risk.check(cmd(qty=10, risk_price=95.0), 100.0) is None


def test_reducing_orders_always_pass() -> None:
    pf, risk = setup(max_gross_exposure=0.1, max_positions=0)
    hold(pf, 50)
    assert risk.check(cmd("sell", 20), 100.0) is None
    assert risk.check(cmd("sell", 500, reduce_only=True), 100.0) is None


def test_drawdown_cutoff_and_daily_loss_limit() -> None:
    pf, risk = setup(max_drawdown=0.1, daily_loss=0.05)
    hold(pf, 100)
    risk.observe(DAY_NS)
    pf.marks["X"] = 96.0  # -400: 4% down on the day
    assert risk.check(cmd(instrument="Y"), 100.0) is None
    pf.marks["X"] = 94.0  # -600: 6% down on the day
    assert risk.check(cmd(instrument="Y"), 100.0)[0] == "daily_loss_limit"  # type: ignore[index]
    risk.observe(2 * DAY_NS)  # a new day resets the daily base, not the peak
    pf.marks["X"] = 89.0
    assert risk.check(cmd(instrument="Y"), 100.0)[0] == "drawdown_cutoff"  # type: ignore[index]


def test_a_reversal_to_a_smaller_opposite_position_is_checked() -> None:
    """+50 -> -20 (sell 70) is not a reduction: it opens 20 short. Checked as
    closing the 50 long and opening 20 short (rules version 2)."""
    pf = Portfolio(10_000.0)
    pf.add_instrument(spot("X"))
    pf.marks["X"] = 100.0
    risk = RiskEngine(RiskLimits(max_open_risk=0.01), pf, current_stops=True, check_reversals=True)
    hold(pf, 50)
    risk.stops[("s", "X")] = 98.0  # the long risks 100 (1% of equity)
    # 20 short with a stop 10 above risks 200 > 1% of 10,000: refused (it passed as a reduction before)
    refusal = risk.check(cmd("sell", 70, risk_price=110.0), 100.0)
    assert refusal is not None and refusal[0] == "max_open_risk"
    # 20 short with a stop 4 above risks 80: the long's 100 is released, not added
    assert risk.check(cmd("sell", 70, risk_price=104.0), 100.0) is None
    # a plain reduction still passes unchecked
    assert risk.check(cmd("sell", 30), 100.0) is None


def test_a_reversal_is_checked_against_gross_exposure_for_what_it_opens() -> None:
    pf = Portfolio(10_000.0)
    pf.add_instrument(spot("X"))
    pf.marks["X"] = 100.0
    risk = RiskEngine(RiskLimits(max_gross_exposure=0.5), pf, current_stops=True, check_reversals=True)
    hold(pf, 40)  # 4,000 long of 5,000 allowed
    assert risk.check(cmd("sell", 70), 100.0) is None  # 30 short: 3,000 once the long is closed
    assert risk.check(cmd("sell", 100), 100.0)[0] == "max_gross_exposure"  # type: ignore[index]  # 60 short


def test_rules_version_1_lets_a_reversal_pass_as_before() -> None:
    pf = Portfolio(10_000.0)
    pf.add_instrument(spot("X"))
    pf.marks["X"] = 100.0
    risk = RiskEngine(RiskLimits(max_open_risk=0.0001), pf)
    hold(pf, 50)
    assert risk.check(cmd("sell", 70, risk_price=110.0), 100.0) is None


def test_an_entry_behind_a_pending_flatten_is_checked_as_the_new_position() -> None:
    """Long 50 with a flatten (reduce-only sell 50) working: a sell of 30 is a
    new 30 short, not a reduction of the long to 20."""
    from tidemark.core.execution.orders import Order

    pf = Portfolio(10_000.0)
    pf.add_instrument(spot("X"))
    pf.marks["X"] = 100.0
    risk = RiskEngine(RiskLimits(max_open_risk=0.01), pf, current_stops=True, check_reversals=True)
    hold(pf, 50)
    flatten = Order(cmd("sell", 50, reduce_only=True), seq=1, quantity=50.0)
    refusal = risk.check(cmd("sell", 30, risk_price=110.0), 100.0, queued=[flatten])  # 300 at risk > 100
    assert refusal is not None and refusal[0] == "max_open_risk"
    assert risk.check(cmd("sell", 30, risk_price=103.0), 100.0, queued=[flatten]) is None  # 90: the long is released
    assert risk.check(cmd("sell", 30, risk_price=110.0), 100.0) is None  # without the flatten: a reduction
