"""Small UX bugs an earlier review found: a run that fails at start leaves
no journal, output piped into ``head`` ends quietly, a run without trades
has typed empty frames, counts agree with their nouns."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tidemark.adapters.backtest import Result, replay, run_backtest
from tidemark.core.events import RunFailed
from tidemark.core.text import plural
from tidemark.journal.errors import JournalEmptyError
from tidemark.journal.reader import JournalReader
from tidemark.journal.writer import JournalWriter

ROOT = Path(__file__).resolve().parents[2]


def tidemark(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tidemark", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("ux")
    done = tidemark("backtest", "--no-report", "--journal", "run.journal", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return cwd / "run.journal"


NOOP = "def schema():\n    return {'id': 'noop'}\n\n\ndef on_bar(ctx, i):\n    pass\n"


# -- (b) a run that fails at start ------------------------------------------------------------


def test_a_run_that_fails_at_start_leaves_no_journal(tmp_path: Path) -> None:
    done = tidemark("backtest", "--param", "fast=30", "--no-report", cwd=tmp_path)
    assert done.returncode == 2 and "cannot start" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("*.journal*")), list(tmp_path.rglob("*"))


def test_force_keeps_the_old_journal_when_the_new_run_fails_at_start(journal: Path) -> None:
    before = journal.read_bytes()
    done = tidemark("backtest", "--journal", journal.name, "--force", "--param", "fast=30", cwd=journal.parent)
    assert done.returncode == 2, done.stderr
    assert journal.read_bytes() == before
    assert not [p for p in journal.parent.iterdir() if ".partial" in p.name or ".failed" in p.name]


def test_a_rerun_that_fails_at_start_leaves_no_journal(journal: Path) -> None:
    done = tidemark(
        "backtest", "--from-journal", journal.name, "--param", "fast=30", "--journal", "child.journal",
        cwd=journal.parent,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert not (journal.parent / "child.journal").exists()


def test_replay_and_audit_of_a_journal_without_bars_are_one_line(journal: Path, tmp_path: Path) -> None:
    """A journal with a header and a failure but no market data (as runs
    that failed at start wrote before): one line, exit 1, no traceback."""
    with JournalReader(journal) as reader:
        header = next(event for _, event in reader.events())

    async def write() -> None:
        writer = await JournalWriter.create(tmp_path / "start.journal", durability="normal")
        writer.record(1, header, True, 0)
        writer.record(2, RunFailed(header.ts, "failed", "StrategyError: cannot start"), False, 1)
        await writer.close()

    asyncio.run(write())
    with pytest.raises(JournalEmptyError, match="no market data to replay"):
        replay(tmp_path / "start.journal")
    for command in ("replay", "audit"):
        done = tidemark(command, "start.journal", cwd=tmp_path)
        assert done.returncode == 1, (command, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "no market data to replay" in done.stderr


# -- (c) output piped into head -----------------------------------------------------------------


@pytest.mark.parametrize("command", [["journal", "show"], ["report"], ["journal", "show", "--json"]])
def test_output_cut_short_by_head_ends_quietly(journal: Path, command: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-m", "tidemark", *command, str(journal)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=journal.parent,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.readline()
        process.stdout.close()  # `| head -1`
        stderr = process.stderr.read().decode()
        code = process.wait(timeout=120)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert code in (0, 141), (code, stderr)


# -- (d) a run without trades -------------------------------------------------------------------


def test_a_run_without_trades_has_empty_frames_with_columns_and_dtypes(tmp_path: Path) -> None:
    (tmp_path / "noop.py").write_text(NOOP)
    empty = run_backtest(str(tmp_path / "noop.py"), journal=tmp_path / "noop.journal")
    traded = run_backtest(
        "ema_cross",
        journal=tmp_path / "ema.journal",
        funding={"enabled": True, "rate": 0.0001, "interval": "8h", "fallback": "rate"},
        leverage=2,
    )
    assert empty.metrics["trades"] == 0 and len(traded.fills) and len(traded.funding)
    for name in ("fills", "positions", "funding", "trades", "orders"):
        frame, full = getattr(empty, name), getattr(traded, name)
        assert len(frame) == 0, name
        assert list(frame.columns) == list(full.columns), name
        assert frame.dtypes.to_dict() == full.dtypes.to_dict(), name
    assert empty.fills["exec_time"].dtype == pd.DatetimeTZDtype("ns", "UTC")
    for name in ("rejections", "interest", "records", "counters"):
        assert len(getattr(empty, name).columns) > 0, name
    assert empty.rejections["seq"].dtype == "int64" and empty.counters["count"].dtype == "int64"
    assert empty.fills.empty and empty.fills["quantity"].sum() == 0.0  # code for a run with fills works


# -- (e) singular and plural ----------------------------------------------------------------------


def test_counts_agree_with_their_nouns() -> None:
    assert plural(1, "order") == "1 order" and plural(2, "order") == "2 orders" and plural(0, "order") == "0 orders"
    assert plural(1234, "step", grouped=True) == "1,234 steps" and plural(1, "entry", "entries") == "1 entry"


def test_one_refused_order_is_an_order(tmp_path: Path) -> None:
    (tmp_path / "once.py").write_text(
        "def schema():\n    return {'id': 'once'}\n\n\ndef on_bar(ctx, i):\n    if i == 5:\n        ctx.buy(10_000)\n"
    )
    result = run_backtest(str(tmp_path / "once.py"), journal=tmp_path / "once.journal", initial_cash=1_000)
    assert result.metrics["rejections"] == 1
    assert "1 order refused (insufficient_cash 1)" in result.warnings
    done = tidemark("verify", str(result.journal), cwd=tmp_path)
    assert ", 1 events" not in done.stdout


def test_the_replay_line_counts_in_words(journal: Path) -> None:
    done = tidemark("replay", journal.name, cwd=journal.parent)
    assert done.returncode == 0 and " inputs regenerated " in done.stdout and " outputs byte for byte" in done.stdout


def test_result_from_a_journal_without_trades_has_its_stats(tmp_path: Path) -> None:
    (tmp_path / "noop.py").write_text(NOOP)
    result = Result.from_journal(run_backtest(str(tmp_path / "noop.py"), journal=tmp_path / "n.journal").journal)
    assert result.stats["# Trades"] == 0


def test_the_report_says_one_open_trade_in_the_singular(journal: Path) -> None:
    from tidemark.adapters.report.model import run_warnings

    result = Result.from_journal(journal)
    assert result.metrics["open_trades"] == 1
    assert "1 trade still open at the end (valued at the last close)." in [w.text for w in run_warnings(result)]
