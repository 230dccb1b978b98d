"""Accounting: hand-computed cases and hypothesis identities."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.events import InstrumentDefinition, OrderFilled
from tidemark.core.instruments import spot

FUT = InstrumentDefinition(
    0, "ES", kind="equity_future", quote="USD", settle="USD", multiplier=50.0, fee_per_contract=2.5
)


def fill(
    side: str, qty: float, price: float, fee: float = 0.0, instrument: str = "X", strategy: str = "s"
) -> OrderFilled:
    return OrderFilled(1, strategy, "o", "f", instrument, side, qty, price, 1, 0.0, "taker", fee)


def book(*instruments: InstrumentDefinition, cash: float = 10_000.0) -> Portfolio:
    pf = Portfolio(cash)
    for inst in instruments or (spot("X"),):
        pf.add_instrument(inst)
    return pf


def test_average_price_across_adds_and_partial_closes() -> None:
    pf = book()
    pf.apply_fill(fill("buy", 2, 100))
    pf.apply_fill(fill("buy", 2, 110))
    pos = pf.positions[("s", "X")]
    assert (pos.quantity, pos.avg_price) == (4, 105)
    change = pf.apply_fill(fill("sell", 1, 120, fee=1.0))
    assert change.realized == pytest.approx(15.0)
    assert (pos.quantity, pos.avg_price) == (3, 105)
    pf.marks["X"] = 100
    assert pf.unrealized() == pytest.approx(-15.0)
    assert pf.equity() == pytest.approx(10_000 + 15 - 15 - 1)


def test_flip_through_zero_opens_the_rest_at_the_fill_price() -> None:
    pf = book()
    pf.apply_fill(fill("buy", 2, 100))
    change = pf.apply_fill(fill("sell", 5, 90))
    pos = pf.positions[("s", "X")]
    assert change.realized == pytest.approx(-20.0)
    assert (pos.quantity, pos.avg_price) == (-3, 90)
    pf.apply_fill(fill("buy", 3, 80))
    assert pos.quantity == 0 and pf.total.realized == pytest.approx(-20 + 30)


def test_multiplier_and_point_value() -> None:
    pf = book(FUT)
    pf.apply_fill(fill("buy", 2, 4000.0, fee=5.0, instrument="ES"))
    change = pf.apply_fill(fill("sell", 2, 4010.25, fee=5.0, instrument="ES"))
    assert change.realized == pytest.approx(2 * 50 * 10.25)
    assert pf.balance() == pytest.approx(10_000 + 1025 - 10)


def test_fills_are_attributed_per_strategy() -> None:
    pf = book()
    pf.apply_fill(fill("buy", 1, 100, strategy="a"))
    pf.apply_fill(fill("sell", 2, 100, strategy="b"))
    assert pf.positions[("a", "X")].quantity == 1
    assert pf.positions[("b", "X")].quantity == -2
    assert pf.net_quantity("X") == -1


trades = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.sampled_from(["X", "ES"]),
        st.sampled_from(["buy", "sell"]),
        st.integers(1, 50).map(lambda q: q / 4),
        st.integers(500, 2000).map(lambda p: p / 10),
        st.integers(0, 300).map(lambda f: f / 100),
        st.integers(500, 2000).map(lambda m: m / 10),
    ),
    min_size=1,
    max_size=60,
)


@given(trades)
@settings(max_examples=300, deadline=None)
def test_accounting_identity_and_quantity_conservation(stream: list[tuple]) -> None:
    """At every step: equity == initial + realized + unrealized - fees, the
    position equals the sum of signed fills, and total PnL equals an
    independent cash-flow computation (no averaging involved)."""
    pf = book(spot("X"), FUT, cash=1_000_000.0)
    signed: dict[tuple[str, str], float] = {}
    flows: dict[tuple[str, str], float] = {}
    fees = 0.0
    for strategy, instrument, side, qty, price, fee, mark in stream:
        pf.apply_fill(fill(side, qty, price, fee, instrument, strategy))
        pv = 50.0 if instrument == "ES" else 1.0
        key = (strategy, instrument)
        s = qty if side == "buy" else -qty
        signed[key] = signed.get(key, 0.0) + s
        flows[key] = flows.get(key, 0.0) - s * price * pv
        fees += fee
        pf.marks[instrument] = mark
        snap = pf.snapshot(0)
        assert snap.equity == pytest.approx(
            1_000_000 + snap.realized + snap.unrealized - snap.fees + snap.funding, abs=1e-6
        )
        assert snap.fees == pytest.approx(fees)
        for k, q in signed.items():
            assert pf.positions[k].quantity == pytest.approx(q, abs=1e-9)
        reference = sum(flows[k] + signed[k] * pf.marks[k[1]] * (50.0 if k[1] == "ES" else 1.0) for k in flows)
        assert snap.realized + snap.unrealized == pytest.approx(reference, abs=1e-6)


INVERSE = InstrumentDefinition(
    0, "BTCUSD", kind="perpetual", base="BTC", quote="USD", settle="BTC", inverse=True, contract_size=100.0
)
PERP = InstrumentDefinition(0, "ETHPERP", kind="perpetual", quote="USD", settle="USD")

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("fill"),
            st.sampled_from(["BTCUSD", "ETHPERP", "X"]),
            st.sampled_from(["buy", "sell"]),
            st.integers(1, 40).map(float),
            st.integers(20_000, 80_000).map(float),
            st.sampled_from(["taker", "liquidation"]),
            st.integers(0, 100).map(lambda f: f / 1e6),
        ),
        st.tuples(
            st.just("funding"), st.sampled_from(["BTCUSD", "ETHPERP"]), st.integers(-30, 30).map(lambda r: r / 1e5)
        ),
        st.tuples(st.just("mark"), st.sampled_from(["BTCUSD", "ETHPERP", "X"]), st.integers(20_000, 80_000).map(float)),
    ),
    min_size=1,
    max_size=50,
)


@given(steps)
@settings(max_examples=300, deadline=None)
def test_identity_holds_with_funding_liquidations_and_coin_cash(stream: list[tuple]) -> None:
    from tidemark.core.events import FundingApplied

    pf = book(spot("X"), INVERSE, PERP, cash=1_000_000.0)
    for step in stream:
        if step[0] == "fill":
            _, instrument, side, qty, price, liquidity, fee = step
            pf.apply_fill(OrderFilled(1, "s", "o", "f", instrument, side, qty, price, 1, 0.0, liquidity, fee))
            pf.marks.setdefault(instrument, price)
        elif step[0] == "funding":
            _, instrument, rate = step
            for pos in list(pf.positions.values()):
                if pos.instrument == instrument and pos.quantity:
                    mark = pf.marks.get(instrument, 50_000.0)
                    inst = pf.instruments[instrument]
                    amount = -pos.quantity * (inst.contract_size / mark if inst.inverse else mark) * rate
                    pf.apply_funding(FundingApplied(1, "s", instrument, pos.quantity, rate, mark, amount, inst.settle))
        else:
            _, instrument, price = step
            pf.marks[instrument] = price
            pf.update_rate(instrument, price)
        pf.rates.setdefault("BTC", 50_000.0)
        snap = pf.snapshot(0)
        assert snap.equity == pytest.approx(
            1_000_000 + snap.realized + snap.unrealized - snap.fees + snap.funding, rel=1e-12, abs=1e-6
        )
        for currency, ledger in pf.by_currency.items():
            initial = 1_000_000 if currency == "USD" else 0.0
            assert pf.balances[currency] == pytest.approx(
                initial + ledger.realized - ledger.fees + ledger.funding, abs=1e-9
            )
