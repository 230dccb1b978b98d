"""Contract rules: quantities in whole lots, prices in whole ticks, orders
worth the minimum notional, no dust after a close. ctx and execution
algorithms round what they send; the venue refuses what does not conform."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kit import write_bars, write_strategy
from tidemark.adapters.backtest import run_backtest
from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.events import BUY, SELL, InstrumentDefinition, OrderFilled
from tidemark.core.instruments import on_step, round_price, round_quantity, to_step


@pytest.mark.parametrize(
    ("value", "step", "up", "expected"),
    [
        (52.5, 1.0, False, 52.0),
        (52.5, 1.0, True, 53.0),
        (0.30000000000000004, 0.001, False, 0.3),
        (0.29999999999999993, 0.001, False, 0.3),  # float noise below a lot: that lot, not the one below
        (0.2999999, 0.001, False, 0.299),  # a real shortfall: the lot below
        (1.2341, 0.001, True, 1.235),
        (41845.6789, 0.01, False, 41845.67),
        (7.0, 0.5, False, 7.0),
    ],
)
def test_to_step_rounds_to_whole_steps_written_exactly(value: float, step: float, up: bool, expected: float) -> None:
    assert to_step(value, step, up=up) == expected


def test_on_step_tells_multiples() -> None:
    assert on_step(0.3, 0.1) and on_step(52.0, 1.0) and on_step(123.0, 0.0)
    assert not on_step(0.35, 0.1) and not on_step(52.5, 1.0)


def test_rounding_is_never_more_aggressive_than_asked() -> None:
    inst = InstrumentDefinition(0, "X", tick_size=0.5, lot_size=0.01)
    assert round_quantity(inst, 1.239) == 1.23  # down: never more than sized
    assert round_price(inst, 100.3, up=False) == 100.0  # a buy limit: lower
    assert round_price(inst, 100.3, up=True) == 100.5  # a sell limit: higher
    free = InstrumentDefinition(0, "Y")
    assert round_quantity(free, 1.239) == 1.239 and round_price(free, 100.3, up=True) == 100.3


def test_a_close_leaves_no_dust() -> None:
    inst = InstrumentDefinition(0, "X", lot_size=0.001)
    pf = Portfolio(1e6)
    pf.add_instrument(inst)
    for qty in (0.1, 0.2):
        pf.apply_fill(OrderFilled(0, "s", "o", "f", "X", BUY, qty, 100.0, 0, 0.0, "taker", 0.0))
    change = pf.apply_fill(OrderFilled(0, "s", "c", "g", "X", SELL, 0.3, 100.0, 0, 0.0, "taker", 0.0))
    assert 0.1 + 0.2 - 0.3 != 0.0  # what float arithmetic leaves behind
    assert change.quantity == 0.0 and pf.positions[("s", "X")].avg_price == 0.0


ORDERS = """
def schema(): return {"id": "orders"}
def on_bar(ctx, i):
    if i == 0:
        ctx.buy(1.2345, price=100.37)              # 1.234 lots at 100.35 (a buy limit rounds down)
        ctx.sell(0.5, type="stop", trigger=95.12)  # a sell stop triggers lower: 95.10
        ctx.buy(0.0004)                            # below one lot: sent as it is, refused
        ctx.buy(0.05)                              # 5 USD: below the 10 USD minimum
"""


def test_ctx_rounds_orders_and_the_venue_refuses_what_cannot_trade(tmp_path: Path) -> None:
    data = write_bars(tmp_path / "X.csv", [101.0] * 5)
    strategy = write_strategy(tmp_path / "orders.py", ORDERS)
    config = {
        "instruments": {"X": {"kind": "spot", "lot_size": 0.001, "tick_size": 0.05, "min_notional": 10.0}},
        "account": "margin",
        "borrow_rate": 0.0,
    }
    result = run_backtest(str(strategy), data=[data], config=config, journal=tmp_path / "j.journal")
    orders = result.orders.set_index("order_id")
    assert orders.loc["orders-1", ["quantity", "price"]].tolist() == [1.234, 100.35]
    assert orders.loc["orders-2", "trigger_price"] == 95.1
    assert result.rejections_by_reason() == {"bad_lot_size": 1, "below_min_notional": 1}


def test_cash_carry_trades_whole_contracts_and_rolls_without_residue(tmp_path: Path) -> None:
    from tests.strategies.test_cash_carry import Q1_EXPIRY, Q2_EXPIRY, market

    inverse = {
        "kind": "future",
        "inverse": True,
        "contract_size": 100.0,
        "lot_size": 1.0,
        "base": "BTC",
        "quote": "USD",
    }
    config = {
        "initial_cash": 1_000_000,
        "commission_bps": 2,
        "strategies": [{"strategy": "cash_carry", "params": {"capital_pct": 0.5, "roll_days": 3}}],
        "instruments": {
            "BTC_SPOT": {"kind": "spot", "base": "BTC", "quote": "USD"},
            "BTCUSD_Q1": {**inverse, "expiry": Q1_EXPIRY.isoformat()},
            "BTCUSD_Q2": {**inverse, "expiry": Q2_EXPIRY.isoformat()},
        },
    }
    result = run_backtest(data=market(tmp_path), config=config, journal=tmp_path / "carry.journal")
    futures = result.fills[result.fills["instrument"] != "BTC_SPOT"]
    assert len(futures) > 100
    assert (futures["quantity"] == futures["quantity"].round()).all()  # whole contracts only
    last = result.positions.groupby("instrument")["quantity"].last()
    assert last["BTCUSD_Q1"] == 0.0  # rolled out exactly
    assert last["BTCUSD_Q2"] == round(last["BTCUSD_Q2"])
    # the coin fees of the futures are converted at the spot rate of their time
    coin = futures["fee_currency"] == "BTC"
    assert coin.all() and (futures["fee_account"] > futures["fee"] * 10_000).all()
    assert result.metrics["fees_paid"] == pytest.approx(result.fills["fee_account"].sum())
    assert result.metrics["fees_paid"] != pytest.approx(result.fills["fee"].sum())
