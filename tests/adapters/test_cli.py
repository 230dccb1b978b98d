"""The command line as a user drives it, in a child process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tidemark" / "adapters" / "sample_data" / "SYNTH_BTC-1h.csv"


def tidemark(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tidemark", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    cwd = tmp_path_factory.mktemp("cli")
    done = tidemark("backtest", cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert "final equity" in done.stdout and "journal:" in done.stdout
    journals = list((cwd / "runs").glob("*.journal"))
    assert len(journals) == 1 and journals[0].with_suffix(".html").exists()
    return cwd, journals[0]


def test_backtest_with_no_arguments_writes_journal_and_report(default_run: tuple[Path, Path]) -> None:
    _cwd, journal = default_run
    html = journal.with_suffix(".html").read_text()
    assert "tidemarkReport" in html and "Monthly returns" in html and "Trades" in html


def test_verify_replay_audit_report_show_export(default_run: tuple[Path, Path], tmp_path: Path) -> None:
    cwd, journal = default_run
    verify = tidemark("verify", str(journal), "--json", cwd=cwd)
    assert verify.returncode == 0
    v = json.loads(verify.stdout)
    assert v["ok"] is True and v["first_bad_seq"] is None and len(v["head"]) == 64 and v["events"] > 4000
    replay = tidemark("replay", str(journal), "--check", cwd=cwd)
    assert replay.returncode == 0 and "identical" in replay.stdout
    assert tidemark("audit", str(journal), cwd=cwd).returncode == 0
    report = json.loads(tidemark("report", str(journal), "--json", cwd=cwd).stdout)
    assert {"final_equity", "trades", "sharpe", "max_drawdown", "fees_paid"} <= set(report)
    # The figures, checked against the journal's own tables (not just that the keys exist).
    from tidemark.adapters.backtest import Result

    tables = Result.from_journal(journal)
    equity = tables.equity["equity"]
    assert report["final_equity"] == pytest.approx(float(equity.iloc[-1]), rel=1e-12)
    assert report["max_drawdown"] == pytest.approx(float((equity / equity.cummax() - 1).min()), rel=1e-9)
    assert report["trades"] == int((~tables.trades["open"].astype(bool)).sum()) > 5
    assert report["fees_paid"] == pytest.approx(float(tables.fills["fee_account"].sum()), rel=1e-9)
    assert report["head"] == v["head"]
    show = tidemark("journal", "show", str(journal), cwd=cwd)
    assert "bar" in show.stdout and "run_id" in show.stdout
    out = tidemark("journal", "export", str(journal), "--format", "jsonl", "--out", str(tmp_path), cwd=cwd)
    assert out.returncode == 0 and (tmp_path / "events.jsonl").exists()


def test_damaged_journal_fails_verify_and_replay(default_run: tuple[Path, Path], tmp_path: Path) -> None:
    cwd, journal = default_run
    copy = tmp_path / "damaged.journal"
    copy.write_bytes(journal.read_bytes())
    with sqlite3.connect(copy) as conn:
        conn.execute(
            "UPDATE blocks SET causes = zeroblob(length(causes)) WHERE first_seq = (SELECT MAX(first_seq) FROM blocks)"
        )
    done = tidemark("verify", str(copy), "--json", cwd=cwd)
    assert done.returncode == 1 and json.loads(done.stdout)["first_bad_seq"] is not None
    assert tidemark("replay", str(copy), "--check", cwd=cwd).returncode == 1


def test_replay_reports_the_first_divergent_output(default_run: tuple[Path, Path], tmp_path: Path) -> None:
    """A journal whose recorded strategy source was edited (and re-chained)
    verifies, but its outputs no longer follow from its inputs."""
    import asyncio

    from tidemark.core.events import RunStarted
    from tidemark.journal.reader import JournalReader
    from tidemark.journal.writer import JournalWriter

    cwd, journal = default_run
    forged = tmp_path / "forged.journal"

    async def rewrite() -> None:
        writer = await JournalWriter.create(forged)
        with JournalReader(journal) as reader:
            for record in reader.records():
                event = record.event
                if isinstance(event, RunStarted):
                    import msgspec

                    config = json.loads(event.config)
                    config["strategies"][0]["params"] = {"fast": 5}
                    event = msgspec.structs.replace(event, config=json.dumps(config))
                writer.record(record.seq, event, record.is_input, record.cause)
        await writer.close()

    asyncio.run(rewrite())
    assert tidemark("verify", str(forged), cwd=cwd).returncode == 0
    done = tidemark("replay", str(forged), "--check", cwd=cwd)
    assert done.returncode == 1
    assert "DIVERGES at seq" in done.stdout and "journal:" in done.stdout and "replay:" in done.stdout


def test_own_csv_and_own_strategy_file(tmp_path: Path) -> None:
    strategy = tmp_path / "mine.py"
    strategy.write_text(
        "def schema():\n    return {'id': 'mine', 'inputs': {'n': {'type': 'int', 'default': 20, 'min': 2}}}\n"
        "def on_bar(ctx, i):\n"
        "    sma = ctx.ind.sma(ctx.close, ctx.params['n'])\n"
        "    if i < ctx.params['n']:\n        return\n"
        "    if ctx.close[i] > sma[i] and ctx.position.size == 0:\n        ctx.buy(ctx.size.percent_equity(0.5))\n"
        "    elif ctx.close[i] < sma[i] and ctx.position.size > 0:\n        ctx.flatten()\n"
    )
    data = tmp_path / "prices.csv"
    data.write_text(SAMPLE.read_text())
    done = tidemark(
        "backtest",
        "--data",
        str(data),
        "--strategy",
        str(strategy),
        "--param",
        "n=30",
        "--journal",
        str(tmp_path / "mine.journal"),
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert metrics["trades"] > 5 and metrics["journal"].endswith("mine.journal")
    again = tidemark(
        "backtest",
        "--data",
        str(data),
        "--strategy",
        str(strategy),
        "--journal",
        str(tmp_path / "mine.journal"),
        cwd=tmp_path,
    )
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "nope.csv"], "nope.csv: no such file"),
        (["--strategy", "nope"], "unknown strategy 'nope'"),
        (["--param", "fast=abc"], "parameter 'fast' must be int"),
        (["--param", "speed=3"], "unknown parameter(s) speed"),
        (["--config", "missing.json"], "cannot read config"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    done = tidemark("backtest", "--no-report", *args, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tidemark: error:") and message in lines[0]
    assert not list(tmp_path.glob("runs/*.journal"))


def test_bad_data_row_exits_2_and_writes_no_journal(tmp_path: Path) -> None:
    rows = SAMPLE.read_text().splitlines()
    cells = rows[10].split(",")
    cells[2] = "1"  # high below open/close
    rows[10] = ",".join(cells)
    data = tmp_path / "broken.csv"
    data.write_text("\n".join(rows) + "\n")
    done = tidemark("backtest", "--data", str(data), "--journal", str(tmp_path / "b.journal"), cwd=tmp_path)
    assert done.returncode == 2
    assert "broken.csv: row 10: field 'high'" in done.stderr
    assert not (tmp_path / "b.journal").exists()


def test_unknown_config_key_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"initial_cash": 1000, "comission_bps": 4}))
    done = tidemark("backtest", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 2 and "comission_bps" in done.stderr


def test_strategies_lists_builtins(tmp_path: Path) -> None:
    done = tidemark("strategies", "--json", cwd=tmp_path)
    ids = [s["id"] for s in json.loads(done.stdout)]
    assert ids == ["cash_carry", "ema_cross", "futures_trend", "short_overlay", "sleeves", "sma_cross"]


def test_every_bar_gives_the_same_run_as_the_wake_mask(default_run: tuple[Path, Path], tmp_path: Path) -> None:
    cwd, journal = default_run
    gated = json.loads(tidemark("report", str(journal), "--json", cwd=cwd).stdout)
    done = tidemark(
        "backtest", "--every-bar", "--no-report", "--journal", str(tmp_path / "e.journal"), "--json", cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    every = json.loads(done.stdout)
    assert every["trades"] == gated["trades"] > 5
    assert every["final_equity"] == gated["final_equity"]


def test_a_wake_mask_that_looks_ahead_is_one_line_and_exit_2(tmp_path: Path) -> None:
    strategy = tmp_path / "peek.py"
    strategy.write_text(
        "import numpy as np\n"
        "def schema():\n    return {'id': 'peek'}\n"
        "def wake(ctx):\n    return np.roll(ctx.close, -1) > ctx.close\n"
        "def on_bar(ctx, i):\n    pass\n"
    )
    done = tidemark("backtest", "--strategy", str(strategy), "--no-report", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "wake(ctx) looks ahead" in lines[0]
    for journal in tmp_path.glob("runs/*.journal"):  # the run started, so its journal says it failed
        with sqlite3.connect(journal) as conn:
            assert conn.execute("SELECT value FROM meta WHERE key = 'status'").fetchone() == ("failed",)


def test_cash_carry_runs_out_of_the_box_and_from_an_explicit_config(tmp_path: Path) -> None:
    """``--strategy cash_carry`` with no data runs on the bundled sample (spot
    and two inverse quarterlies, a roll); the same run spelled out in a
    config gives the same journal head."""
    sample = ROOT / "tidemark" / "adapters" / "sample_data" / "cash_carry"
    done = tidemark("backtest", "--strategy", "cash_carry", "--json", "--no-report", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["currency"] == "USD" and out["rejections"] == 0 and out["trades"] >= 3
    assert (tmp_path / out["journal"]).is_file()
    run = json.loads((sample / "run.json").read_text())
    config = {
        "strategy": "cash_carry",
        "symbols": run["symbols"],
        "data": [str(sample / name) for name in run["data"]],
        "instruments": run["instruments"],
        "margin_mode": "cross",
    }
    (tmp_path / "carry.json").write_text(json.dumps(config))
    explicit = tidemark(
        "backtest", "--config", "carry.json", "--journal", "explicit.journal", "--json", "--no-report", cwd=tmp_path
    )
    assert explicit.returncode == 0, explicit.stderr
    again = json.loads(explicit.stdout)
    assert again["head"] == out["head"] and again["final_equity"] == out["final_equity"]
    table = tidemark("backtest", "--strategy", "cash_carry", "--no-report", "--journal", "t.journal", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "BTCUSDT, BTCUSD_250328, BTCUSD_250627" in table.stdout and "expectancy" in table.stdout
    assert "USD" in next(line for line in table.stdout.splitlines() if line.startswith("expectancy"))
