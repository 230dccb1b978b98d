"""Lot rounding against the float noise of summed fills (bugs an earlier
cash-and-carry port hit): a whole fractional spot position could not be
sold, and a large position lost a lot to rounding."""

from __future__ import annotations

import random
from pathlib import Path

from tests.kit import write_bars, write_strategy
from tidemark.adapters.backtest import run_backtest
from tidemark.core.instruments import to_step


def test_to_step_keeps_a_noisy_sum_of_lots_on_its_lot() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        lot = rng.choice([0.00001, 0.001, 0.1, 1e-8])
        held = 0.0
        for _ in range(rng.randint(2, 200)):
            held += to_step(rng.uniform(0, 3), lot)
        # an absolute 1e-9-lot tolerance dropped a whole lot here (72.43386555 -> ...54 in lots of 1e-8)
        assert abs(to_step(held, lot) - held) < lot / 2
    assert to_step(72.43386554999999, 1e-8) == 72.43386555
    assert to_step(0.30000000000000004, 0.1) == 0.3 and to_step(0.29, 0.1) == 0.2  # still rounds down


def test_selling_a_whole_fractional_spot_position_is_not_refused(tmp_path: Path) -> None:
    """0.7 + 0.1 + 0.1 + 0.1 is 0.9999999999999999 in floats; the sell of
    "all of it" rounds to the lot, 1.0, which was more than held: a cash
    account refused it (no_borrow: a 1e-16 short) and the position stayed open."""
    data = write_bars(tmp_path / "BTC.csv", [60_000.0 + i for i in range(12)], freq="15min")
    strategy = write_strategy(
        tmp_path / "dust.py",
        """
        def schema():
            return {"id": "dust", "inputs": {}}

        def on_bar(ctx, i):
            if i < 4:
                ctx.buy((0.7, 0.1, 0.1, 0.1)[i])
            if i == 6:
                ctx.sell(ctx.position.size)  # all of it, as an unwind's children do (not reduce-only)
        """,
    )
    instruments = {"BTC": {"kind": "spot", "base": "BTC", "quote": "USD", "lot_size": 0.001, "min_notional": 5.0}}
    result = run_backtest(
        data=[data],
        config={"strategy": str(strategy), "initial_cash": 100_000, "commission_bps": 10, "instruments": instruments},
        journal=tmp_path / "dust.journal",
    )
    assert result.rejections_by_reason() == {}
    quantities = result.positions["quantity"].tolist()
    assert quantities[3] == 1.0  # the position is on the lot grid, not 0.9999999999999999
    assert quantities[-1] == 0.0 and len(result.fills) == 5
