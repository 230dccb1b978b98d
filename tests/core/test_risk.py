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
