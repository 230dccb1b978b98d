"""Walk-forward analysis as a user runs it: windows cut by hand, each train
window's choice is its sweep's best, each out-of-sample run is the plain
backtest of that choice (warm, and trading only from the test window's
start), the curves chained by hand, a window with no qualified point
recorded and not traded, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tidemark
from tidemark.adapters.backtest import Result, run_backtest
from tidemark.adapters.cli import main
from tidemark.adapters.research.walkforward import WalkForwardError, WalkForwardResult, Window, windows

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tidemark" / "adapters" / "sample_data" / "SYNTH_BTC-1h.csv"
GRID = {"fast": [5, 20], "slow": [40]}
# On this data the 40-day train windows give Sharpe ratios (fast 5, fast 20) of about
# (0.34, -0.75), (0.95, 1.18), (-4.57, -5.89): "sharpe<=0" leaves window 1 one point
# (fast 20, not the grid's first), window 2 none (skipped) and window 3 both (fast 5 wins).
CONSTRAINTS = ["sharpe<=0"]
HOUR = pd.Timedelta(hours=1)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(scope="module")
def wf(tmp_path_factory: pytest.TempPathFactory) -> WalkForwardResult:
    out = tmp_path_factory.mktemp("wf") / "wf"
    return tidemark.walk_forward(
        "ema_cross", data=SAMPLE, grid=GRID, constraints=CONSTRAINTS, train="40d", test="40d", out=out
    )


# -- windows, by hand ---------------------------------------------------------------------------------


def test_rolling_windows_by_hand() -> None:
    got = windows("2024-01-01", "2024-01-11", "3d", "2d")
    assert got == [
        Window(1, ts("2024-01-01"), ts("2024-01-04"), ts("2024-01-04"), ts("2024-01-06")),
        Window(2, ts("2024-01-03"), ts("2024-01-06"), ts("2024-01-06"), ts("2024-01-08")),
        Window(3, ts("2024-01-05"), ts("2024-01-08"), ts("2024-01-08"), ts("2024-01-10")),
    ]  # a fourth would end on the 12th, past the data's end (the 11th)
    stepped = windows("2024-01-01", "2024-01-11", "3d", "2d", step="3d")
    assert [(w.train_start, w.test_start, w.test_end) for w in stepped] == [
        (ts("2024-01-01"), ts("2024-01-04"), ts("2024-01-06")),
        (ts("2024-01-04"), ts("2024-01-07"), ts("2024-01-09")),
    ]


def test_anchored_windows_by_hand() -> None:
    got = windows(ts("2024-01-01"), ts("2024-01-10"), "3d", "2d", anchored=True)
    assert got == [
        Window(1, ts("2024-01-01"), ts("2024-01-04"), ts("2024-01-04"), ts("2024-01-06")),
        Window(2, ts("2024-01-01"), ts("2024-01-06"), ts("2024-01-06"), ts("2024-01-08")),
        Window(3, ts("2024-01-01"), ts("2024-01-08"), ts("2024-01-08"), ts("2024-01-10")),  # ends exactly at the end
    ]


def test_windows_in_bars_count_the_bars() -> None:
    # 10 hourly bars with a 5-hour gap after the 6th: bar counts follow the bars, not the clock
    opens = [*pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")]
    opens += [*pd.date_range("2024-01-01 10:00", periods=4, freq="1h", tz="UTC")]
    end = opens[-1] + HOUR
    got = windows(opens[0], end, 4, 2, times=opens)
    assert got == [
        Window(1, opens[0], opens[4], opens[4], opens[6]),
        Window(2, opens[2], opens[6], opens[6], opens[8]),
        Window(3, opens[4], opens[8], opens[8], end),  # the last test part holds the last 2 bars
    ]
    anchored = windows(opens[0], end, 4, 2, anchored=True, step=3, times=opens)
    assert [(w.train_start, w.train_end, w.test_end) for w in anchored] == [
        (opens[0], opens[4], opens[6]),
        (opens[0], opens[7], opens[9]),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("10d", "2d"), "no window fits the data: train 10d + test 2d need 12d, the data holds 10.0 days"),
        (("3d", "2d", False, "1d"), "step 1d is shorter than test 2d"),
        (("72", "2d"), "give all as durations (90d) or all as numbers of bars"),
        (("0d", "2d"), "train '0d': must be longer than 0"),
        (("3d", "soon"), "test 'soon': a duration"),
        ((3, 2), "lengths in bars need the bars' open times"),
    ],
)
def test_windows_that_cannot_be_made_are_refused(args: tuple, message: str) -> None:
    with pytest.raises(WalkForwardError) as caught:
        windows("2024-01-01", "2024-01-11", *args)
    assert message in str(caught.value)


# -- the walk-forward ----------------------------------------------------------------------------------


def test_the_windows_of_the_sample(wf: WalkForwardResult) -> None:
    start = ts("2024-01-01")
    days = pd.Timedelta(days=1)
    expected = [(start + 40 * k * days, start + 40 * (k + 1) * days, start + 40 * (k + 2) * days) for k in range(3)]
    table = wf.windows
    assert list(zip(table["train_start"], table["test_start"], table["test_end"], strict=True)) == expected
    assert (table["train_end"] == table["test_start"]).all()
    assert table["status"].tolist() == ["ok", "skipped", "ok"]
    assert wf.warmup == "40d"  # the train length


def test_each_choice_is_the_best_of_its_train_sweep(wf: WalkForwardResult, tmp_path: Path) -> None:
    table = wf.windows
    chosen = table.loc[table["status"] == "ok", "fast"].astype(int).tolist()
    assert chosen == [20, 5]  # not always the grid's first point
    for _, row in table.iterrows():
        last_bar = row["train_end"] - HOUR
        swept = tidemark.sweep(
            "ema_cross",
            data=SAMPLE,
            grid=GRID,
            constraints=CONSTRAINTS,
            start=row["train_start"].isoformat(),
            end=last_bar.isoformat(),
            warmup="40d",
            out=tmp_path / f"w{row['window']}",
        )
        assert swept.sweep_id == row["sweep_id"]  # the same sweep: the train window and nothing else
        best = swept.best
        if row["status"] == "skipped":
            assert best is None and int(swept.table["qualified"].sum()) == 0 == row["qualified"]
            continue
        assert best is not None
        assert (int(best["fast"]), int(best["slow"])) == (int(row["fast"]), int(row["slow"]))
        assert best["sharpe"] == row["is_sharpe"] and best["run_id"] == row["is_run_id"]
        assert best["total_return"] == row["is_total_return"] and best["trades"] == row["is_trades"]
        first = swept.result(int(best["index"]))
        assert first.equity.index[0] == row["train_start"] + HOUR  # the sweep's runs trade the train window only
        assert first.equity.index[-1] == row["train_end"]


def test_each_out_of_sample_run_is_the_backtest_of_the_choice(wf: WalkForwardResult, tmp_path: Path) -> None:
    for _, row in wf.windows[wf.windows["status"] == "ok"].iterrows():
        alone = run_backtest(
            "ema_cross",
            data=[SAMPLE],
            params={"fast": int(row["fast"]), "slow": int(row["slow"])},
            start=row["test_start"].isoformat(),
            end=(row["test_end"] - HOUR).isoformat(),
            warmup="40d",
            journal=tmp_path / f"oos-{row['window']}.journal",
        )
        assert alone.run_id == row["oos_run_id"] and alone.head == row["oos_head"]
        assert alone.metrics["sharpe"] == row["oos_sharpe"] and alone.metrics["trades"] == row["oos_trades"]
        journaled = Result.from_journal(wf.folder / row["oos_journal"])
        assert journaled.head == alone.head and wf.result(int(row["window"])).head == alone.head


def test_out_of_sample_runs_are_warm_and_trade_only_in_their_test_window(wf: WalkForwardResult) -> None:
    for _, row in wf.windows[wf.windows["status"] == "ok"].iterrows():
        result = wf.result(int(row["window"]))
        start, end = row["test_start"], row["test_end"]
        seen = result.bars["SYNTH_BTC"].index  # bar close times
        # the warm-up: 40 days of bars before the test window (as many as the data holds)
        assert seen[0] == max(start - pd.Timedelta(days=40), ts("2024-01-01")) + HOUR
        assert len(result.fills) and result.fills["exec_time"].min() >= start
        assert result.trades["entry_time"].min() >= start
        assert result.equity.index[0] == start + HOUR and result.equity.index[-1] == end
        assert result.metrics["trades"] > 0


def test_the_stitched_curve_chains_the_windows_by_hand(wf: WalkForwardResult) -> None:
    cash = 100_000.0
    running = cash
    pieces = []
    for _, row in wf.windows[wf.windows["status"] == "ok"].iterrows():
        own = wf.result(int(row["window"])).equity["equity"]
        steps = own.to_numpy() / np.concatenate([[cash], own.to_numpy()[:-1]])  # returns, the first from the cash
        values = running * np.cumprod(steps)
        pieces.append(pd.Series(values, index=own.index))
        running = values[-1]
    by_hand = pd.concat(pieces)
    assert wf.equity.index.equals(by_hand.index)
    np.testing.assert_allclose(wf.equity["equity"].to_numpy(), by_hand.to_numpy(), rtol=1e-12)
    ok = wf.windows[wf.windows["status"] == "ok"]
    total = float(np.prod(1 + ok["oos_total_return"].astype(float))) - 1
    assert wf.metrics["total_return"] == pytest.approx(total, rel=1e-12)
    assert wf.metrics["trades"] == ok["oos_trades"].sum()
    peak = np.maximum.accumulate(by_hand.to_numpy())
    assert wf.metrics["max_drawdown"] == pytest.approx(float((by_hand.to_numpy() / peak - 1).min()), rel=1e-12)
    csv = pd.read_csv(wf.outputs["equity"], index_col="time", parse_dates=True)
    np.testing.assert_allclose(csv["equity"].to_numpy(), by_hand.to_numpy(), rtol=1e-12)


def test_a_window_without_a_qualified_point_is_recorded_and_not_traded(wf: WalkForwardResult) -> None:
    row = wf.windows.set_index("window").loc[2]
    assert row["status"] == "skipped" and row["qualified"] == 0 and row["points"] == 2
    assert pd.isna(row["fast"]) and row["oos_run_id"] == "" and row["oos_journal"] == ""
    assert "no qualified point" in row["note"]
    assert sorted(p.name for p in (wf.folder / "oos").iterdir()) == ["window-01.journal", "window-03.journal"]
    inside = wf.equity[(wf.equity.index > row["test_start"]) & (wf.equity.index <= row["test_end"])]
    assert inside.empty  # the equity carries over the skipped window
    with pytest.raises(KeyError):
        wf.result(2)
    summary = wf.outputs["markdown"].read_text()
    assert "Window 2: no qualified point in the train part (2 of 2 ran): not traded." in summary
    assert "traded out of sample: 2 of 3 windows (1 skipped" in summary
    page = wf.outputs["html"].read_text()
    assert "<polyline" in page and "skipped" in page and page.count("<tr>") >= 3


def test_the_windows_table_is_written(wf: WalkForwardResult) -> None:
    csv = pd.read_csv(wf.outputs["windows"])
    assert csv["oos_run_id"].fillna("").tolist() == wf.windows["oos_run_id"].tolist()
    assert csv["status"].tolist() == ["ok", "skipped", "ok"]
    np.testing.assert_allclose(
        csv["oos_sharpe"].to_numpy(float), wf.windows["oos_sharpe"].to_numpy(float), equal_nan=True
    )


# -- the CLI ------------------------------------------------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidemark", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_the_cli_in_bars_anchored(tmp_path: Path) -> None:
    done = cli(
        "walkforward",
        "--data",
        str(SAMPLE),
        "--grid",
        "fast=5,20",
        "--grid",
        "slow=40",
        "--train",
        "1440",
        "--test",
        "1200",
        "--anchored",
        "--workers",
        "1",
        "--json",
        "--out",
        str(tmp_path / "cli"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    rows = summary["windows"]
    start = ts("2024-01-01")
    assert [(r["train_start"], r["test_start"], r["test_end"]) for r in rows] == [
        (start.isoformat(), (start + 1440 * HOUR).isoformat(), (start + 2640 * HOUR).isoformat()),
        (start.isoformat(), (start + 2640 * HOUR).isoformat(), (start + 3840 * HOUR).isoformat()),
    ]  # 3840 + 1200 bars > 4000: two windows
    assert summary["traded"] == 2 and summary["skipped"] == 0
    last = rows[-1]
    alone = run_backtest(
        "ema_cross",
        data=[SAMPLE],
        params={"fast": last["fast"], "slow": last["slow"]},
        start=last["test_start"],
        end=(ts(last["test_end"]) - HOUR).isoformat(),
        warmup=1440,  # bars: the train length
        journal=tmp_path / "alone.journal",
    )
    assert alone.head == last["oos_head"] and alone.bars["SYNTH_BTC"].index[0] == start + 1201 * HOUR
    text = cli(
        "walkforward",
        "--data",
        str(SAMPLE),
        "--grid",
        "fast=5,20",
        "--grid",
        "slow=40",
        "--train",
        "1440",
        "--test",
        "1200",
        "--anchored",
        "--workers",
        "1",
        "--out",
        str(tmp_path / "cli"),
        cwd=tmp_path,
    )
    assert text.returncode == 0, text.stderr
    assert "walk-forward: 2 windows (anchored, train 1440, test 1200, warm-up 1440); 2 traded" in text.stdout
    assert "stitched out of sample: total_return" in text.stdout and "walkforward.html" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--train", "500d", "--test", "30d"), "no window fits the data"),
        (("--train", "90x", "--test", "30d"), "train '90x': a duration"),
        (("--train", "2000", "--test", "30d"), "give all as durations"),
        (("--train", "60d", "--test", "30d", "--step", "10d"), "the test windows would overlap"),
        (("--train", "60d", "--test", "30d", "--warmup", "3x"), "warmup '3x'"),
        (("--train", "60d", "--test", "30d", "--constraint", "trades=3"), "expected METRIC OP VALUE"),
        (("--train", "60d", "--test", "30d", "--space", "fast=3:9"), "--space needs --random N or --optuna N"),
        (
            (
                "--test",
                "30d",
            ),
            "the following arguments are required: --train",
        ),
    ],
)
def test_bad_walk_forwards_are_one_line_and_exit_2(
    args: tuple[str, ...], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = () if "--space" in args else ("--grid", "fast=5")
    out = tmp_path / "bad"
    code = main(["walkforward", "--data", str(SAMPLE), *grid, "--workers", "1", "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err
    if "required" not in message:  # argparse prints its usage line first
        assert err.count("\n") == 1 and err.startswith("tidemark: error: ")
    assert not (out / "oos").exists()  # refused before anything ran


def test_a_rerun_into_the_same_folder_leaves_nothing_of_the_earlier_windows(
    wf: WalkForwardResult, tmp_path: Path
) -> None:
    """A walk-forward with fewer windows, in a copy of the folder of one with
    three: the third window's train sweep and out-of-sample journal, and
    window 1's journal (not traded now: its only qualified point fails the
    stricter constraint), are gone; what is left is what windows.csv names."""
    import shutil

    out = tmp_path / "wf"
    shutil.copytree(wf.folder, out)
    again = tidemark.walk_forward(
        "ema_cross", data=SAMPLE, grid=GRID, constraints=["sharpe<=-1"], train="40d", test="60d", out=out, force=True
    )
    assert len(again.windows) == 2
    traded = set(again.windows["oos_journal"].replace("", pd.NA).dropna())
    assert {f"oos/{p.name}" for p in (out / "oos").iterdir() if p.suffix == ".journal"} == traded
    assert sorted(p.name for p in (out / "train").iterdir()) == ["window-01", "window-02"]
