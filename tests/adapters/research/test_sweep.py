"""Sweeps as a user runs them: every point a journaled backtest, a manifest
that is the same bytes however the points were run, resumable, provable."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tidemark
from tidemark.adapters.backtest import Result, run_backtest
from tidemark.adapters.research.proof import verify_sweep
from tidemark.adapters.research.sweep import SweepError, SweepResult
from tidemark.core.events import SweepPoint
from tidemark.journal.reader import JournalReader

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tidemark" / "adapters" / "sample_data" / "SYNTH_BTC-1h.csv"
GRID = {"fast": [5, 10, 30], "slow": [20, 40]}


def grid_sweep(out: Path, **kwargs: object) -> SweepResult:
    return tidemark.sweep("ema_cross", data=SAMPLE, grid=GRID, out=out, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> SweepResult:
    return grid_sweep(tmp_path_factory.mktemp("serial") / "sweep", constraints=["trades>=60"])


def manifest_points(path: Path) -> list[SweepPoint]:
    with JournalReader(path) as reader:
        return [e for _, e in reader.events() if isinstance(e, SweepPoint)]


def test_every_point_is_the_backtest_with_its_parameters(serial: SweepResult, tmp_path: Path) -> None:
    table = serial.table
    assert list(table["index"]) == list(range(6))
    assert [(r.fast, r.slow) for r in table.itertuples()] == [(5, 20), (5, 40), (10, 20), (10, 40), (30, 20), (30, 40)]
    row = table[(table["fast"] == 10) & (table["slow"] == 40)].iloc[0]
    alone = run_backtest("ema_cross", data=[SAMPLE], params={"fast": 10, "slow": 40}, journal=tmp_path / "a.journal")
    assert row["run_id"] == alone.run_id and row["head"] == alone.head  # the same run, byte for byte chained
    assert row["final_equity"] == alone.metrics["final_equity"] and row["sharpe"] == alone.metrics["sharpe"]
    assert row["trades"] == alone.metrics["trades"]
    point = serial.result(int(row["index"]))
    assert point.head == alone.head and point.metrics["final_equity"] == alone.metrics["final_equity"]


def test_points_read_their_market_inputs_from_one_input_journal(serial: SweepResult, tmp_path: Path) -> None:
    """By default the bars are journaled once, in inputs/; each point's journal
    keeps its records, chain and head (the manifest, which names every
    point's head and journal, is the same bytes as a single-file sweep's)."""
    (inputs,) = (serial.folder / "inputs").glob("inputs-*.journal")
    points = sorted((serial.folder / "runs").glob("*.journal"))
    for journal in points:
        with JournalReader(journal) as reader:
            assert reader.meta["format_version"] == "4" and reader.meta["inputs_head"].startswith(inputs.name[7:23])
    single = grid_sweep(tmp_path / "single", constraints=["trades>=60"], shared=False)
    assert not (single.folder / "inputs").exists()
    assert single.manifest.read_bytes() == serial.manifest.read_bytes()
    assert (single.folder / "results.csv").read_bytes() == (serial.folder / "results.csv").read_bytes()
    shared_bytes = inputs.stat().st_size + sum(p.stat().st_size for p in points)
    single_bytes = sum(p.stat().st_size for p in (single.folder / "runs").glob("*.journal"))
    assert shared_bytes < 0.6 * single_bytes
    for journal in (single.folder / "runs").glob("*.journal"):
        with JournalReader(journal) as reader:
            assert reader.meta["format_version"] == "3"


def test_a_point_its_strategy_refuses_is_recorded_not_run(serial: SweepResult) -> None:
    bad = serial.table[(serial.table["fast"] == 30) & (serial.table["slow"] == 20)].iloc[0]
    assert bad["status"] == "invalid" and "fast must be shorter than slow" in bad["error"]
    assert bad["journal"] == "" and not bad["qualified"] and pd.isna(bad["rank"])
    assert len(list((serial.folder / "runs").glob("*.journal"))) == 5


def test_ranking_follows_the_objective_among_qualified_points(serial: SweepResult) -> None:
    table = serial.table
    ok = table[table["status"] == "ok"]
    assert set(table.loc[table["qualified"], "index"]) == set(ok.loc[ok["trades"] >= 60, "index"])
    assert (ok["trades"] < 60).any()  # the constraint excluded a point that ran
    expected = ok[ok["trades"] >= 60].sort_values("sharpe", ascending=False)["index"].tolist()
    assert table.dropna(subset=["rank"]).sort_values("rank")["index"].tolist() == expected
    assert serial.best is not None and serial.best["index"] == expected[0]


def test_the_manifest_is_the_same_bytes_on_a_local_pool(serial: SweepResult, tmp_path: Path) -> None:
    pooled = grid_sweep(tmp_path / "pool", constraints=["trades>=60"], workers=2)
    assert pooled.sweep_id == serial.sweep_id and pooled.ran == 6  # the refused point was tried too
    assert pooled.manifest.read_bytes() == serial.manifest.read_bytes()
    assert (pooled.folder / "results.csv").read_bytes() == (serial.folder / "results.csv").read_bytes()
    points = manifest_points(pooled.manifest)
    assert [p.index for p in points] == list(range(6))  # in index order, whatever order they finished in


def test_a_rerun_reads_finished_points_back(serial: SweepResult, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(serial.folder, folder)
    again = grid_sweep(folder, constraints=["trades>=60"])
    assert again.ran == 0 and again.head == serial.head
    (folder / "sweep.journal").unlink()  # lost the manifest: the point journals are still found by run id
    again = grid_sweep(folder, constraints=["trades>=60"])
    # only the refused point is tried again (it has no journal to be found by)
    assert again.ran == 1 and again.manifest.read_bytes() == serial.manifest.read_bytes()
    victim = folder / serial.table.iloc[0]["journal"]
    victim.unlink()
    again = grid_sweep(folder, constraints=["trades>=60"])
    assert again.ran == 1 and again.manifest.read_bytes() == serial.manifest.read_bytes()


def test_an_interrupted_sweep_resumes_to_the_same_manifest(serial: SweepResult, tmp_path: Path) -> None:
    calls = []

    def interrupt_after_three(done: int, total: int) -> None:
        calls.append(done)
        if done == 3:
            raise KeyboardInterrupt

    folder = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        grid_sweep(folder, constraints=["trades>=60"], progress=interrupt_after_three)
    with JournalReader(folder / "sweep.journal") as reader:
        assert reader.meta["status"] == "interrupted"
    assert len(manifest_points(folder / "sweep.journal")) == 3
    resumed = grid_sweep(folder, constraints=["trades>=60"])
    assert resumed.ran == 3  # the three in the manifest were read back
    assert resumed.manifest.read_bytes() == serial.manifest.read_bytes()


def test_a_folder_holding_another_sweep_is_refused(serial: SweepResult, tmp_path: Path) -> None:
    folder = tmp_path / "other"
    shutil.copytree(serial.folder, folder)
    with pytest.raises(SweepError, match="holds another sweep"):
        tidemark.sweep("ema_cross", data=SAMPLE, grid={"fast": [6]}, out=folder)
    forced = tidemark.sweep("ema_cross", data=SAMPLE, grid={"fast": [6]}, out=folder, force=True)
    assert len(forced.table) == 1 and forced.table.iloc[0]["status"] == "ok"


def test_a_constraint_against_the_base_run(tmp_path: Path) -> None:
    result = grid_sweep(tmp_path / "base", constraints=["trades>=base"])
    base = run_backtest("ema_cross", data=[SAMPLE], journal=tmp_path / "defaults.journal")
    assert result.base is not None and result.base["trades"] == base.metrics["trades"]
    ok = result.table[result.table["status"] == "ok"]
    better = set(ok.loc[ok["trades"] >= base.metrics["trades"], "index"])
    assert set(result.table.loc[result.table["qualified"], "index"]) == better
    assert 0 < len(better) < len(ok)
    points = manifest_points(result.manifest)
    assert points[0].index == -1 and json.loads(points[0].params) == {}


def test_optuna_is_seeded_and_independent_of_the_workers(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    space = {"fast": "3:20", "slow": "21:60"}
    one = tidemark.sweep(
        "ema_cross", data=SAMPLE, space=space, method="optuna", trials=6, batch=3, seed=5, out=tmp_path / "a"
    )
    two = tidemark.sweep(
        "ema_cross", data=SAMPLE, space=space, method="optuna", trials=6, batch=3, seed=5, out=tmp_path / "b", workers=2
    )
    assert one.manifest.read_bytes() == two.manifest.read_bytes()
    assert len(one.table) == 6 and (one.table["status"] == "ok").all()
    assert one.table["fast"].between(3, 20).all() and one.table["slow"].between(21, 60).all()
    other = tidemark.sweep(
        "ema_cross", data=SAMPLE, space=space, method="optuna", trials=6, batch=3, seed=6, out=tmp_path / "c"
    )
    assert other.table[["fast", "slow"]].values.tolist() != one.table[["fast", "slow"]].values.tolist()


def test_a_random_search_is_seeded(tmp_path: Path) -> None:
    space = {"fast": "3:20", "slow": "21:60"}
    one = tidemark.sweep("ema_cross", data=SAMPLE, space=space, trials=4, seed=9, out=tmp_path / "a")
    two = tidemark.sweep("ema_cross", data=SAMPLE, space=space, trials=4, seed=9, out=tmp_path / "b")
    assert one.table[["fast", "slow"]].values.tolist() == two.table[["fast", "slow"]].values.tolist()
    assert one.manifest.read_bytes() == two.manifest.read_bytes()


def test_verify_and_audit_prove_every_point_against_the_manifest(serial: SweepResult, tmp_path: Path) -> None:
    assert verify_sweep(serial.folder).ok
    audited = verify_sweep(serial.folder, audit=True)
    assert audited.ok and audited.checked == 5 and audited.points == 6
    folder = tmp_path / "tampered"
    shutil.copytree(serial.folder, folder)
    journals = serial.table[serial.table["status"] == "ok"]["journal"].tolist()
    shutil.copy(folder / journals[1], folder / journals[0])  # a point's journal replaced by another's
    proof = verify_sweep(folder)
    assert not proof.ok and "ends at head" in proof.problems[0] and "point 0" in proof.problems[0]
    (folder / journals[2]).unlink()
    assert any("missing" in p for p in verify_sweep(folder).problems)
    manifest = folder / "sweep.journal"
    with sqlite3.connect(manifest) as conn:
        conn.execute("UPDATE meta SET value = 'x' WHERE key = 'run_id'")
    assert not verify_sweep(folder).ok


def test_outputs_hold_the_table(serial: SweepResult) -> None:
    csv = pd.read_csv(serial.outputs["csv"])
    assert csv["run_id"].fillna("").tolist() == serial.table["run_id"].tolist()
    assert np.allclose(csv["sharpe"].to_numpy(float), serial.table["sharpe"].to_numpy(float), equal_nan=True)
    parquet = pd.read_parquet(serial.outputs["parquet"])
    pd.testing.assert_series_equal(parquet["final_equity"], serial.table["final_equity"])
    best = serial.best
    assert best is not None
    summary = serial.outputs["markdown"].read_text()
    assert f"| 1 | {int(best['fast'])} | {int(best['slow'])} |" in summary and serial.head in summary
    page = serial.outputs["html"].read_text()
    heat = serial.heatmap("fast", "slow")
    assert heat.loc[40, 10] == serial.table.query("fast == 10 and slow == 40")["sharpe"].iloc[0]
    assert f'data-v="{float(heat.loc[40, 10])!r}"' in page and "sharpe over fast (columns) and slow (rows)" in page


def test_top_reports(tmp_path: Path) -> None:
    result = tidemark.sweep("ema_cross", data=SAMPLE, grid={"fast": [5, 10]}, out=tmp_path / "t", top=1)
    (report,) = sorted((result.folder / "top").glob("*.html"))
    assert report.name == f"01-{result.best['run_id']}.html" and "tidemarkReport" in report.read_text()


def frame(n: int = 800, seed: int = 3) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    close = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, n)))
    return pd.DataFrame(
        {"Open": close, "High": close * 1.01, "Low": close * 0.99, "Close": close, "Volume": 1.0}, index=index
    )


class Breakout(tidemark.Strategy):
    @classmethod
    def schema(cls) -> dict:
        return {"id": "breakout", "inputs": {"n": {"type": "int", "default": 20, "min": 2, "max": 500}}}

    def on_bar(self, ctx, i) -> None:  # type: ignore[no-untyped-def]
        n = ctx.params["n"]
        if i < n:
            return
        high = ctx.high[-n - 1 : -1].max()
        if ctx.close[-1] > high and ctx.position.size == 0:
            ctx.buy(1.0)
        elif ctx.close[-1] < ctx.low[-n - 1 : -1].min() and ctx.position.size > 0:
            ctx.flatten()


def test_a_notebook_class_over_a_dataframe_on_a_local_pool(tmp_path: Path) -> None:
    df = frame()
    result = tidemark.sweep(Breakout, data=df, grid={"n": [10, 20, 40]}, cash=10_000, out=tmp_path / "nb", workers=2)
    assert (result.table["status"] == "ok").all(), result.table["error"].tolist()
    for row in result.table.itertuples():
        alone = tidemark.backtest(df, Breakout, cash=10_000, n=row.n)
        assert row.head == alone.head and row.final_equity == alone.metrics["final_equity"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidemark", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_the_cli_sweep_and_its_proof(serial: SweepResult, tmp_path: Path) -> None:
    done = cli(
        "sweep",
        "--data",
        str(SAMPLE),
        "--grid",
        "fast=5,10,30",
        "--grid",
        "slow=20:40:20",
        "--constraint",
        "trades>=60",
        "--workers",
        "2",
        "--json",
        "--out",
        str(tmp_path / "cli"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["sweep_id"] == serial.sweep_id and summary["head"] == serial.head
    assert summary["status"] == {"invalid": 1, "ok": 5} and summary["best"]["index"] == serial.best["index"]
    assert (tmp_path / "cli" / "sweep.journal").read_bytes() == serial.manifest.read_bytes()
    text = cli("verify", str(tmp_path / "cli"), cwd=tmp_path)
    assert text.returncode == 0 and "verify: PASS" in text.stdout and "5 journals verified" in text.stdout
    next((tmp_path / "cli" / "runs").glob("*.journal")).unlink()
    failed = cli("audit", str(tmp_path / "cli"), cwd=tmp_path)
    assert failed.returncode == 1 and "missing" in failed.stdout and "audit: FAIL" in failed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to sweep"),
        (("--space", "fast=3:9"), "--space needs --random N or --optuna N"),
        (("--grid", "fast=9:3"), "ends (3) before it starts (9)"),
        (("--grid", "fast=5,10", "--objective", "sharp"), "'sharp' is not a metric of a run; known:"),
        (("--grid", "fast=5,10", "--constraint", "drawdown>=-0.2"), "'drawdown' is not a metric of a run"),
        (("--grid", "fast=5", "--constraint", "trades>>3"), "is not a number"),
        (("--grid", "fast=5", "--constraint", "trades=3"), "expected METRIC OP VALUE"),
        (("--grid", "fast=5", "--param", "fast=7"), "both fixed (--param) and swept"),
    ],
)
def test_bad_sweeps_are_one_line_and_exit_2(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    done = cli("sweep", "--data", str(SAMPLE), "--workers", "1", "--out", str(tmp_path / "bad"), *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_results_of_a_point_are_exactly_its_journal(serial: SweepResult) -> None:
    row = serial.table.iloc[0]
    back = Result.from_journal(serial.folder / row["journal"])
    assert back.metrics["sharpe"] == row["sharpe"] and back.head == row["head"]


def test_the_rankable_metrics_are_what_a_run_reports(serial: SweepResult) -> None:
    from tidemark.adapters.research.sweep import RANKABLE_METRICS

    row = serial.table.iloc[0]
    numeric = {k for k, v in serial.result(int(row["index"])).metrics.items() if isinstance(v, (int, float))}
    assert numeric == set(RANKABLE_METRICS)
