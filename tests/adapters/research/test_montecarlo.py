"""Monte Carlo: known paths, a one-trade bootstrap, determinism per seed,
the ruin guard, and ``tidemark montecarlo`` on a real journal."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidemark.adapters.backtest import SAMPLE_DIR, Result, run_backtest
from tidemark.adapters.cli import main
from tidemark.adapters.research import montecarlo as mc
from tidemark.adapters.research.analytics import daily_equity

SAMPLE = SAMPLE_DIR / "SYNTH_BTC-1h.csv"


def fake_run(pnl: list[float], initial_cash: float = 1000.0, equity: list[float] | None = None) -> SimpleNamespace:
    """A Result-like run: closed trades with these PnLs (plus one open trade,
    which must be ignored), and a daily equity curve."""
    trades = pd.DataFrame(
        {"pnl_account": [*pnl, 1e9], "pnl": [0.0] * (len(pnl) + 1), "open": [False] * len(pnl) + [True]}
    )
    values = equity if equity is not None else [initial_cash, initial_cash]
    index = pd.date_range("2024-01-01", periods=len(values), freq="1D", tz="UTC")
    return SimpleNamespace(
        trades=trades,
        metrics={"initial_cash": initial_cash},
        equity=pd.DataFrame({"equity": values}, index=index),
    )


# -- path figures ----------------------------------------------------------------------------------


def test_path_stats_of_known_paths() -> None:
    nan = float("nan")
    paths = np.array(
        [
            [100.0, 120.0, 90.0, 95.0, 130.0, 125.0],  # -25 % at step 2, back above 120 at step 4
            [100.0, 80.0, 90.0, 85.0, 95.0, 99.0],  # -20 %, never back at 100
            [100.0, 110.0, 120.0, 130.0, 140.0, 150.0],  # no drawdown
            [100.0, 50.0, -10.0, 20.0, 30.0, 40.0],  # ruined at step 2: the account stops there
            [100.0, 90.0, 100.0, 50.0, 100.0, 99.0],  # the max drawdown (-50 %) is the later one
        ]
    )
    stats = mc.path_stats(paths)
    assert stats["final_equity"].tolist() == [125.0, 99.0, 150.0, -10.0, 99.0]
    np.testing.assert_allclose(stats["max_drawdown"], [-0.25, -0.20, 0.0, nan, -0.5])
    np.testing.assert_array_equal(stats["time_to_recover"], [2.0, nan, 0.0, nan, 1.0])
    assert stats["ruined"].tolist() == [False, False, False, True, False]


# -- trade bootstrap -------------------------------------------------------------------------------


def test_one_trade_always_gives_the_same_path() -> None:
    loss = mc.bootstrap_trades(fake_run([-100.0]), n=50, seed=3)
    assert loss["final_equity"].tolist() == [900.0] * 50
    assert loss["max_drawdown"].tolist() == pytest.approx([-0.1] * 50)
    assert loss["time_to_recover"].isna().all()  # never back at 1000
    gain = mc.bootstrap_trades(fake_run([250.0]), n=5)
    assert gain["final_equity"].tolist() == [1250.0] * 5
    assert gain["max_drawdown"].tolist() == [0.0] * 5 and gain["time_to_recover"].tolist() == [0.0] * 5
    assert loss.attrs == {"method": "trades", "seed": 3, "n": 50, "trades": 1, "initial_cash": 1000.0, "unit": "trades"}


def test_trade_bootstrap_adds_the_drawn_trades_in_order() -> None:
    pnl = np.array([30.0, -20.0, 5.0])
    frame = mc.bootstrap_trades(fake_run(pnl.tolist()), n=200, seed=11)
    draws = np.random.default_rng(11).integers(0, 3, size=(200, 3))  # the stream the seed gives
    paths = 1000.0 + np.cumsum(pnl[draws], axis=1)
    np.testing.assert_allclose(frame["final_equity"], paths[:, -1])
    full = np.concatenate([np.full((200, 1), 1000.0), paths], axis=1)
    peak = np.maximum.accumulate(full, axis=1)
    np.testing.assert_allclose(frame["max_drawdown"], (full / peak - 1).min(axis=1))
    # Every final equity is 1000 plus a sum of three of the trades.
    sums = {30 * a - 20 * b + 5 * (3 - a - b) for a in range(4) for b in range(4 - a)}
    assert set(frame["final_equity"] - 1000.0) <= {float(s) for s in sums}


def test_a_trade_path_that_reaches_zero_is_ruined_and_stops() -> None:
    frame = mc.bootstrap_trades(fake_run([-600.0]), n=3)
    # 1000 -> 400 (one trade only): not ruined.
    assert frame["final_equity"].tolist() == [400.0] * 3 and not frame["ruined"].any()
    frame = mc.bootstrap_trades(fake_run([-600.0, -600.0]), n=3)
    # 1000 -> 400 -> -200: ruined at the second trade; returns past it are undefined.
    assert frame["final_equity"].tolist() == [-200.0] * 3
    assert frame["ruined"].all() and frame["max_drawdown"].isna().all() and frame["time_to_recover"].isna().all()
    assert mc.percentiles(frame).loc["p50", "max_drawdown"] == -math.inf  # ruin ranks worst, not dropped


@settings(max_examples=25)
@given(st.lists(st.floats(-50.0, 50.0), min_size=1, max_size=30), st.integers(0, 2**32 - 1))
def test_trade_bootstrap_is_deterministic_per_seed(pnl: list[float], seed: int) -> None:
    run = fake_run(pnl)
    first = mc.bootstrap_trades(run, n=30, seed=seed)
    pd.testing.assert_frame_equal(first, mc.bootstrap_trades(run, n=30, seed=seed))
    assert first.attrs["seed"] == seed


def test_different_seeds_give_different_draws() -> None:
    run = fake_run([10.0, -7.0, 3.0, -1.0, 12.0])
    a = mc.bootstrap_trades(run, n=100, seed=1)
    b = mc.bootstrap_trades(run, n=100, seed=2)
    assert not np.array_equal(a["final_equity"], b["final_equity"])
    c = mc.block_bootstrap_returns(fake_run([], equity=[100, 101, 99, 104, 98, 97, 105]), n=100, block=2, seed=1)
    d = mc.block_bootstrap_returns(fake_run([], equity=[100, 101, 99, 104, 98, 97, 105]), n=100, block=2, seed=2)
    assert not np.array_equal(c["max_drawdown"], d["max_drawdown"])


def test_trade_bootstrap_refuses_nothing_to_resample() -> None:
    with pytest.raises(ValueError, match="closed no trades"):
        mc.bootstrap_trades(fake_run([]))
    with pytest.raises(ValueError, match="at least 1, was 0"):
        mc.bootstrap_trades(fake_run([1.0]), n=0)


def test_large_runs_are_drawn_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunking bounds memory; the figures stay those of each drawn path."""
    monkeypatch.setattr(mc, "CHUNK_CELLS", 7)  # 3 rows of 2 trades per chunk
    frame = mc.bootstrap_trades(fake_run([-100.0, -100.0]), n=10)
    assert len(frame) == 10 and frame.index.tolist() == list(range(10))
    assert frame["final_equity"].tolist() == [800.0] * 10


# -- block bootstrap of daily returns --------------------------------------------------------------

CURVE = [1000.0, 1100.0, 990.0, 1040.0, 1200.0, 1150.0, 1300.0, 1250.0]


def test_daily_returns_start_from_the_initial_cash() -> None:
    run = fake_run([], initial_cash=800.0, equity=CURVE)
    returns = mc.daily_returns(run)
    assert returns.iloc[0] == pytest.approx(1000 / 800 - 1)
    assert returns.iloc[1] == pytest.approx(0.1)
    assert 800.0 * np.prod(1 + returns.to_numpy()) == pytest.approx(CURVE[-1])


def test_a_block_as_long_as_the_run_keeps_its_final_equity() -> None:
    """A whole-series block is a rotation of the days: same product."""
    run = fake_run([], equity=CURVE)
    for block in (len(CURVE), 10 * len(CURVE)):
        frame = mc.block_bootstrap_returns(run, n=40, block=block, seed=5)
        assert frame["final_equity"].to_numpy() == pytest.approx([CURVE[-1]] * 40, rel=1e-12)
        assert frame.attrs["block"] == len(CURVE) and frame.attrs["block_requested"] == block
    # ... while short blocks resample: the finals differ.
    short = mc.block_bootstrap_returns(run, n=40, block=2, seed=5)
    assert short["final_equity"].nunique() > 1


def test_block_bootstrap_recovery_in_days() -> None:
    falling = fake_run([], equity=[1000.0, 990.0, 980.0, 950.0, 940.0, 900.0])
    frame = mc.block_bootstrap_returns(falling, n=30, block=2)
    # Every day loses (or, the first, is flat): never recovered; the drawdown is the whole fall.
    assert frame["time_to_recover"].isna().all() and not frame["ruined"].any()
    assert frame["max_drawdown"].to_numpy() == pytest.approx(frame["final_equity"].to_numpy() / 1000 - 1)
    assert frame["final_equity"].nunique() > 1  # drawn with replacement, not a reordering
    assert (mc.percentiles(frame)["time_to_recover"] == math.inf).all()
    rising = fake_run([], equity=[1000.0, 1010.0, 1030.0, 1060.0])
    frame = mc.block_bootstrap_returns(rising, n=10, block=3)
    assert frame["max_drawdown"].tolist() == [0.0] * 10 and frame["time_to_recover"].tolist() == [0.0] * 10
    # Daily returns 0, -10 %, +10 %, +10 %, drawn as rotations (one block as long as the run):
    # after the loss two gains are needed (0.9 * 1.1 = 0.99 < 1): recovered in 2 days when
    # both gains follow the loss, never when a gain comes first (the peak is then 1.1).
    dip = fake_run([], equity=[1000.0, 900.0, 990.0, 1089.0])
    frame = mc.block_bootstrap_returns(dip, n=50, block=4, seed=9)
    assert set(frame["time_to_recover"].dropna()) == {2.0} and frame["time_to_recover"].isna().any()


def test_block_bootstrap_of_a_ruined_run_is_undefined() -> None:
    run = fake_run([], equity=[1000.0, 500.0, 0.0, 0.0])
    frame = mc.block_bootstrap_returns(run, n=4)
    assert len(frame) == 4 and frame[["final_equity", "max_drawdown", "time_to_recover"]].isna().all().all()
    assert frame.attrs["ruined_at"] == "2024-01-03T00:00:00+00:00"
    assert mc.percentiles(frame).isna().all().all()
    with pytest.raises(ValueError, match="block must be at least 1 day, was 0"):
        mc.block_bootstrap_returns(fake_run([], equity=CURVE), block=0)


@settings(max_examples=20)
@given(st.lists(st.floats(500.0, 2000.0), min_size=2, max_size=40), st.integers(1, 10), st.integers(0, 1000))
def test_block_bootstrap_is_deterministic_and_draws_the_runs_days(values: list[float], block: int, seed: int) -> None:
    run = fake_run([], equity=values)
    first = mc.block_bootstrap_returns(run, n=20, block=block, seed=seed)
    pd.testing.assert_frame_equal(first, mc.block_bootstrap_returns(run, n=20, block=block, seed=seed))
    # Every simulated path compounds len(values) of the run's own daily returns.
    returns = mc.daily_returns(run).to_numpy()
    low, high = np.min(1 + returns) ** len(values), np.max(1 + returns) ** len(values)
    finals = first["final_equity"].to_numpy() / 1000.0
    assert ((finals >= low * (1 - 1e-9)) & (finals <= high * (1 + 1e-9))).all()


# -- percentiles -----------------------------------------------------------------------------------


def test_percentiles_are_simulation_values() -> None:
    frame = pd.DataFrame(
        {
            "final_equity": np.arange(1.0, 101.0),
            "max_drawdown": -np.arange(1.0, 101.0) / 100,
            "time_to_recover": [*range(90), *[float("nan")] * 10],
            "ruined": False,
        }
    )
    frame.attrs["seed"] = 7
    table = mc.percentiles(frame)
    assert table["final_equity"].tolist() == [5.0, 25.0, 50.0, 75.0, 95.0]
    assert table["max_drawdown"].tolist() == [-0.96, -0.76, -0.51, -0.26, -0.06]
    assert table["time_to_recover"].tolist() == [4.0, 24.0, 49.0, 74.0, math.inf]  # 10 % never recovered
    assert list(table.index) == ["p5", "p25", "p50", "p75", "p95"] and table.attrs["seed"] == 7
    assert mc.percentiles(frame, q=(50,)).loc["p50", "final_equity"] == 50.0


# -- the command line ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("montecarlo") / "run.journal"
    run_backtest("ema_cross", data=[SAMPLE], journal=path)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_montecarlo_prints_both_bootstraps_and_writes_the_simulations(
    journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "sims.csv"
    code, out, err = run(
        capsys, "montecarlo", str(journal), "--n", "300", "--seed", "4", "--block", "10", "--csv", str(csv)
    )
    assert code == 0, err
    result = Result.from_journal(journal)
    trades = mc.bootstrap_trades(result, n=300, seed=4)
    returns = mc.block_bootstrap_returns(result, n=300, block=10, seed=4)
    closed = int((~result.trades["open"].astype(bool)).sum())
    assert f"trade bootstrap: 300 simulations of {closed} closed trades from 100,000.00 USD, seed 4" in out
    days = len(daily_equity(result))
    assert f"return bootstrap: 300 simulations of {days} daily returns in circular blocks of 10 days" in out
    for frame in (trades, returns):
        median = mc.percentiles(frame).loc["p50", "final_equity"]
        assert f"p50 {median:,.2f}" in " ".join(out.split())
    sims = pd.read_csv(csv)
    assert sims["method"].value_counts().to_dict() == {"trades": 300, "returns": 300}
    np.testing.assert_allclose(sims.loc[sims["method"] == "trades", "final_equity"], trades["final_equity"])
    np.testing.assert_allclose(sims.loc[sims["method"] == "returns", "max_drawdown"], returns["max_drawdown"])
    # The same seed prints the same; another seed does not.
    again = run(capsys, "montecarlo", str(journal), "--n", "300", "--seed", "4", "--block", "10")[1]
    other = run(capsys, "montecarlo", str(journal), "--n", "300", "--seed", "5", "--block", "10")[1]
    assert again == out.replace(f"csv: 600 simulations in {csv}\n", "") and other != again


def test_montecarlo_bad_input_is_exit_2(journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "montecarlo", str(journal), "--n", "0")
    assert code == 2 and "--n 0: must be at least 1" in err
    code, _, err = run(capsys, "montecarlo", str(journal), "--block", "x")
    assert code == 2 and "--block 'x': expected a whole number" in err
    code, _, err = run(capsys, "montecarlo", str(tmp_path / "none.journal"))
    assert code == 2 and err.strip() == f"tidemark: error: {tmp_path / 'none.journal'}: no such journal"
