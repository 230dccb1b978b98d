"""The equity curve values kept steps later, several marks moving at once,
in one numpy pass per run of steps of one shape; each value must be the
float a step-by-step valuation of the same portfolio gives (hypothesis over
random sequences of marks, runs of marks read as columns, step closes and
fills, on spot, an inverse perpetual that also prices its settlement coin,
and a linear contract settled in that coin)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.events import InstrumentDefinition, OrderFilled
from tidemark.core.instruments import spot
from tidemark.journal.equity_curve import EquityCurve

INSTRUMENTS = ("A", "B", "C", "I", "L")  # C, L have no mark until their first: they start without being kept
INVERSE = InstrumentDefinition(
    0, "I", kind="perpetual", base="BTC", quote="USD", settle="BTC", inverse=True, contract_size=100.0
)
COIN_LINEAR = InstrumentDefinition(0, "L", kind="perpetual", base="ETH", quote="BTC", settle="BTC", contract_size=0.5)
prices = st.floats(min_value=0.5, max_value=2_000.0, allow_nan=False)
operations = st.one_of(
    st.tuples(st.just("mark"), st.sampled_from(INSTRUMENTS), prices),
    st.tuples(st.just("close")),
    st.tuples(st.just("rows"), st.sampled_from(INSTRUMENTS), st.lists(prices, min_size=1, max_size=6)),
    st.tuples(st.just("fill"), st.sampled_from(INSTRUMENTS), st.sampled_from(("buy", "sell")), prices),
)


def portfolio() -> Portfolio:
    book = Portfolio(10_000.0)
    for name in INSTRUMENTS[:3]:
        book.add_instrument(spot(name))
    book.add_instrument(INVERSE)  # the BTC rate's source: its marks are valued step by step
    book.add_instrument(COIN_LINEAR)
    book.marks.update(A=100.0, B=50.0, I=1_000.0)
    book.update_rate("I", 1_000.0)
    return book


def valued(book: Portfolio, ts: int) -> tuple[Any, ...]:
    in_market = 1.0 if any(True for _ in book.open_positions()) else 0.0
    return (ts, book.equity(), book.cash(), book.gross_exposure(), in_market)


@settings(max_examples=300, deadline=None)
@given(st.lists(operations, max_size=40))
def test_kept_steps_are_valued_as_step_by_step(steps: list[tuple[Any, ...]]) -> None:
    lazy, eager = portfolio(), portfolio()
    curve = EquityCurve(lazy)
    expected: list[tuple[Any, ...]] = []
    ts = 0
    for op in steps:
        if op[0] == "mark":  # as the projections apply a bar: moving, then the mark
            _, name, price = op
            curve.moving(name)
            lazy.marks[name] = eager.marks[name] = price
            lazy.update_rate(name, price)
            eager.update_rate(name, price)
        elif op[0] == "close":
            ts += 1
            curve.close(ts)
            expected.append(valued(eager, ts))
        elif op[0] == "rows":  # a run of one instrument's bars read as columns, each closing a step
            _, name, marks = op
            times = np.arange(ts + 1, ts + 1 + len(marks), dtype=np.int64)
            if curve.moving(name):
                curve.close_rows(name, times, np.array(marks), 0, len(marks))
                lazy.marks[name] = marks[-1]
            else:
                for t, price in zip(times.tolist(), marks, strict=True):
                    lazy.marks[name] = price
                    lazy.update_rate(name, price)
                    curve.close(t)
            for t, price in zip(times.tolist(), marks, strict=True):
                eager.marks[name] = price
                eager.update_rate(name, price)
                expected.append(valued(eager, t))
            ts += len(marks)
        else:
            _, name, side, price = op
            fill = OrderFilled(ts, "s", "o", "f", name, side, 1.5, price, ts, 0.0, "taker", 0.25)
            curve.changing()
            lazy.apply_fill(fill)
            eager.apply_fill(fill)
    frame = curve.frame()
    assert frame.index.asi8.tolist() == [row[0] for row in expected]
    for i, column in enumerate(EquityCurve.NAMES, start=1):
        assert frame[column].tolist() == [row[i] for row in expected], column  # exactly, float for float
