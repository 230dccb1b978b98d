"""Execution algorithms: TWAP (weights, cap, catch-up, final sweep), POV,
and a roll across two inverse quarterlies preserving the coin hedge."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tidemark.adapters.backtest import run_backtest
from tidemark.core.events import AlgoFinished, OrderFilled, SubmitOrder
from tidemark.journal.reader import JournalReader

HOUR = 3_600_000_000_000


def bars_csv(path: Path, prices: list[float], volume: float | list[float] = 1_000.0, start: str = "2024-01-01") -> Path:
    n = len(prices)
    volumes = volume if isinstance(volume, list) else [volume] * n
    frame = pd.DataFrame(
        {
            "date": pd.date_range(start, periods=n, freq="1h", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": prices,
            "high": [p * 1.001 for p in prices],
            "low": [p * 0.999 for p in prices],
            "close": prices,
            "volume": volumes,
        }
    )
    frame.to_csv(path, index=False)
    return path


def run(tmp_path: Path, body: str, data: list[Path], **config: object) -> tuple[list[object], object]:
    strategy = tmp_path / "algo_strategy.py"
    strategy.write_text(textwrap.dedent(body))
    result = run_backtest(str(strategy), data=data, journal=tmp_path / "j.journal", initial_cash=1_000_000, **config)
    with JournalReader(result.journal) as reader:
        return [e for _, e in reader.events()], result


def test_twap_equal_slots_children_sum_to_the_parent(tmp_path: Path) -> None:
    data = bars_csv(tmp_path / "X.csv", [100.0 + i for i in range(12)])
    events, _ = run(
        tmp_path,
        """
        def schema(): return {"id": "t"}
        def on_bar(ctx, i):
            if i == 0:
                ctx.twap("buy", 10, slots=4, interval=3_600_000_000_000)
    """,
        [data],
    )
    children = [e for e in events if isinstance(e, SubmitOrder) and e.parent_id]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [c.quantity for c in children] == [2.5, 2.5, 2.5, 2.5]
    assert sum(f.quantity for f in fills) == 10
    assert {f.order_id.rsplit(".", 1)[0] for f in fills} == {children[0].parent_id}
    done = [e for e in events if isinstance(e, AlgoFinished)]
    assert len(done) == 1 and done[0].filled == 10 and done[0].children == 4
    # slot k's child is decided at bar k+1's close and fills at bar k+2's open
    assert done[0].avg_price == pytest.approx(np.mean([102, 103, 104, 105]))


def test_twap_weights_cap_catch_up_and_final_sweep(tmp_path: Path) -> None:
    volumes = [100.0, 100.0, 10.0, 100.0, 100.0, 100.0, 100.0, 100.0]
    data = bars_csv(tmp_path / "X.csv", [100.0] * 8, volumes)
    events, _ = run(
        tmp_path,
        """
        def schema(): return {"id": "t"}
        def on_bar(ctx, i):
            if i == 0:
                ctx.twap("sell", 40, slots=4, interval=3_600_000_000_000, weights=[1, 1, 1, 1], participation=0.2)
    """,
        [data],
        account="margin",
        borrow_rate=0.0,  # a spot short needs a loan
    )
    children = [c.quantity for c in events if isinstance(c, SubmitOrder) and c.parent_id]
    # slot targets 10, 20, 30, 40 (slot k decided at bar k+1); the thin bar caps slot 1 at 2,
    # slot 2 catches up to 30 (18 <= cap 20), the last slot sweeps the rest uncapped
    assert children == [10.0, 2.0, 18.0, 10.0]
    assert sum(f.quantity for f in events if isinstance(f, OrderFilled)) == 40


def test_pov_takes_a_share_of_each_bar(tmp_path: Path) -> None:
    data = bars_csv(tmp_path / "X.csv", [50.0] * 10, 20.0)
    events, _ = run(
        tmp_path,
        """
        def schema(): return {"id": "t"}
        def on_bar(ctx, i):
            if i == 0:
                ctx.pov("buy", 9, participation=0.25)
    """,
        [data],
    )
    children = [c.quantity for c in events if isinstance(c, SubmitOrder) and c.parent_id]
    assert children == [5.0, 4.0]
    assert [e.filled for e in events if isinstance(e, AlgoFinished)] == [9.0]


def test_roll_between_inverse_quarterlies_keeps_the_coin_hedge(tmp_path: Path) -> None:
    n = 72
    q1 = bars_csv(tmp_path / "BTCUSD_Q1.csv", list(np.linspace(40_000, 41_000, n)))
    q2 = bars_csv(tmp_path / "BTCUSD_Q2.csv", list(np.linspace(40_800, 42_000, n)))
    expiry = pd.Timestamp("2024-01-01T00:00:00Z") + pd.Timedelta(hours=60)
    spec = {"kind": "future", "inverse": True, "contract_size": 100.0, "lot_size": 1.0, "base": "BTC", "quote": "USD"}
    instruments = {"BTCUSD_Q1": {**spec, "expiry": expiry.isoformat()}, "BTCUSD_Q2": spec}
    events, result = run(
        tmp_path,
        """
        def schema(): return {"id": "carry"}
        def on_init(ctx):
            ctx.state["coin_before"] = None
        def on_bar(ctx, i):
            if i == 0:
                ctx.sell(100, symbol="BTCUSD_Q1")
            if i == 40:
                ctx.state["coin_before"] = ctx.coin_exposure("BTCUSD_Q1")
                ctx.state["target"] = ctx.contracts_for("BTCUSD_Q2", ctx.state["coin_before"])
                ctx.roll("BTCUSD_Q1", "BTCUSD_Q2", slots=8, interval=3_600_000_000_000)
            if i == 55:
                ctx.log.info(f"{ctx.state['coin_before']!r} {ctx.state['target']!r} {ctx.coin_exposure('BTCUSD_Q2')!r}")
    """,
        [q1, q2],
        instruments=instruments,
    )
    fills = [e for e in events if isinstance(e, OrderFilled)]
    by_parent: dict[str, float] = {}
    for f in fills:
        if ".algo." in f.order_id:
            parent = f.order_id.rsplit(".", 1)[0]
            by_parent[parent] = by_parent.get(parent, 0.0) + f.quantity
    finished = {e.algo_id: e for e in events if isinstance(e, AlgoFinished)}
    assert set(by_parent) == set(finished) and len(finished) == 2
    for algo_id, total in by_parent.items():
        assert total == pytest.approx(finished[algo_id].quantity)  # no double counting
    positions = result.positions.groupby("instrument")["quantity"].last().to_dict()
    assert positions["BTCUSD_Q1"] == 0.0
    log = next(e for e in events if type(e).__name__ == "Log")
    coin_before, target, coin_after = (float(x) for x in log.message.split())
    p1, p2 = np.linspace(40_000, 41_000, n)[40], np.linspace(40_800, 42_000, n)[40]  # closes at the decision bar
    assert coin_before == pytest.approx(-100 * 100.0 / p1)
    assert target == round(-100 * p2 / p1) == positions["BTCUSD_Q2"]  # whole contracts (lot size 1)
    one_contract = 100.0 / p2
    assert abs(target * 100.0 / p2 - coin_before) <= one_contract / 2  # hedge kept to within rounding
    assert abs(coin_after - coin_before) < 0.01 * abs(coin_before)  # and still ~held as Q2 drifts
    settlements = [f for f in fills if f.liquidity == "settlement"]
    assert settlements == []  # Q1 was flat when it expired


def test_a_twap_the_account_cannot_pay_for_stops_at_the_first_refusal(tmp_path: Path) -> None:
    """A cash account's TWAP bigger than its cash: the first refused child
    cancels the parent (an ``AlgoCanceled`` naming the reason), instead of
    one refused child per slot."""
    from tidemark.core.events import AlgoCanceled, OrderRejected

    data = bars_csv(tmp_path / "X.csv", [100.0] * 12)
    strategy = tmp_path / "big_twap.py"
    strategy.write_text(
        textwrap.dedent(
            """
            def schema(): return {"id": "t"}
            def on_bar(ctx, i):
                if i == 0:
                    ctx.twap("buy", 100, slots=8, interval=3_600_000_000_000)
            """
        )
    )
    result = run_backtest(str(strategy), data=[data], journal=tmp_path / "j.journal", initial_cash=3_000)
    with JournalReader(result.journal) as reader:
        events = [e for _, e in reader.events()]
    children = [e for e in events if isinstance(e, SubmitOrder) and e.parent_id]
    refused = [e for e in events if isinstance(e, OrderRejected)]
    (canceled,) = [e for e in events if isinstance(e, AlgoCanceled)]
    assert [c.quantity for c in children] == [12.5, 12.5, 12.5]  # 2 paid for (2,500), the third refused
    assert len(refused) == 1 and refused[0].reason == "insufficient_cash"
    assert canceled.reason == "insufficient_cash" and canceled.filled == 25.0 and canceled.children == 3
    assert canceled.detail.startswith(f"child {refused[0].order_id}")
    assert not [e for e in events if isinstance(e, AlgoFinished)]
    assert result.metrics["rejections"] == 1


def test_twap_limit_children_walk_the_retry_ladder_and_sweep_at_market(tmp_path: Path) -> None:
    """``child_type="limit"``: IOC limits at close +/- offset x (high - low)
    of the bar just closed; a miss moves to the next offset (and the schedule
    catches up), a fill starts the ladder again; the last slot is a market
    sweep (seed 002's router)."""
    data = bars_csv(tmp_path / "X.csv", [100.0] * 12)  # every bar: 99.9 .. 100.1
    events, _ = run(
        tmp_path,
        """
        def schema(): return {"id": "t"}
        def on_bar(ctx, i):
            if i == 0:
                ctx.twap("buy", 8, slots=4, interval=3_600_000_000_000, child_type="limit", offsets=(-1.0, 0.5))
    """,
        [data],
    )
    children = [e for e in events if isinstance(e, SubmitOrder) and e.parent_id]
    assert [(c.order_type, c.quantity) for c in children] == [("limit", 2), ("limit", 4), ("limit", 2), ("market", 4)]
    assert [c.price for c in children[:3]] == [pytest.approx(99.8), pytest.approx(100.1), pytest.approx(99.8)]
    assert all(c.tif == "IOC" for c in children)
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(f.order_id.rsplit(".", 1)[1], f.quantity) for f in fills] == [("2", 4), ("4", 4)]
    (done,) = [e for e in events if isinstance(e, AlgoFinished)]
    assert done.filled == 8


def test_a_sell_of_spot_not_held_ends_the_algo_at_its_first_refusal(tmp_path: Path) -> None:
    """A sell of spot the strategy does not hold (cash account: no_borrow):
    the first refused child ends the parent, with nothing filled, instead of
    a refused child per slot and a sweep again on every later bar."""
    from tidemark.core.events import AlgoCanceled

    data = bars_csv(tmp_path / "X.csv", [100.0] * 12)
    events, _ = run(
        tmp_path,
        """
        def schema(): return {"id": "t"}
        def on_bar(ctx, i):
            if i == 0:
                ctx.twap("sell", 8, slots=4, interval=3_600_000_000_000)
    """,
        [data],
    )
    children = [e for e in events if isinstance(e, SubmitOrder) and e.parent_id]
    assert len(children) == 1
    (canceled,) = [e for e in events if isinstance(e, AlgoCanceled)]
    assert canceled.reason == "no_borrow" and canceled.filled == 0 and canceled.quantity == 8
    assert not [e for e in events if isinstance(e, AlgoFinished)]
