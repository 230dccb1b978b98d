"""A backtest's journal through the run's life: one writer per path, signals
that stop it between batches, a writer child that dies, a parent that dies,
a disk that fills. Each ends in one line, the right exit code, a journal
that is one file and verifies, and no process left behind."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.make_sample_data import synth
from tidemark.core.events import RunFailed
from tidemark.journal.lock import lock_path
from tidemark.journal.reader import JournalReader
from tidemark.journal.verify import verify

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def big_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300,000 hourly bars: a run of a few seconds."""
    path = tmp_path_factory.mktemp("big") / "BIG-1h.csv"
    synth("BIG", 7, 40_000.0, bars=300_000).to_csv(path, index=False)
    return path


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tidemark", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the test signals only what it means to
    )


def wait_until(predicate, timeout: float = 60.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(x) for x in text.split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def one_file(path: Path) -> bool:
    return path.exists() and not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()


def last_record(path: Path) -> object:
    with JournalReader(path) as reader:
        return reader.event(reader.last_seq())


def backtest(data: Path, journal: Path, *extra: str) -> list[str]:
    return ["backtest", "--data", str(data), "--journal", str(journal), "--no-report", *extra]


def test_two_runs_on_one_path_never_overlap(big_data: Path, tmp_path: Path) -> None:
    journal = tmp_path / "j.journal"
    first = start(*backtest(big_data, journal, "--json"), cwd=tmp_path)
    wait_until(lambda: lock_path(journal).exists(), what="the first run's lock")
    began = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-m", "tidemark", *backtest(big_data, journal, "--force", "--seed", "3")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 2, second.stderr
    assert second.stderr.strip().splitlines() == [
        f"tidemark: error: {journal}: journal is being written by another process"
    ]
    assert time.monotonic() - began < 30
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert json.loads(out)["head"] == verify(journal).head  # the first run's results are its own


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_signal_stops_a_backtest_between_batches_and_seals_it_interrupted(
    big_data: Path, tmp_path: Path, sig: int, code: int
) -> None:
    journal = tmp_path / "j.journal"
    run = start(*backtest(big_data, journal), cwd=tmp_path)
    wait_until(lambda: journal.exists() and journal.stat().st_size > 0, what="the journal")
    time.sleep(0.5)
    writer = children_of(run.pid)
    sent = time.monotonic()
    os.killpg(run.pid, sig)  # as a terminal or a CI cancel does: the whole group
    _, err = run.communicate(timeout=60)
    took = time.monotonic() - sent
    assert run.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"interrupted by {signal.Signals(sig).name}" in lines[0], err
    assert f"the journal {journal} is sealed 'interrupted'" in lines[0]
    assert took < 5.0, f"{took:.2f} s from the signal to the exit"
    assert one_file(journal)
    report = verify(journal)
    assert report.ok and report.status == "interrupted"
    last = last_record(journal)
    assert isinstance(last, RunFailed) and last.status == "interrupted" and last.fault_seq == 0
    assert not any(alive(pid) for pid in writer)
    check = subprocess.run(
        [sys.executable, "-m", "tidemark", "replay", str(journal), "--check"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0 and "replay identical" in check.stdout, check.stdout + check.stderr


def test_a_killed_writer_child_ends_the_run_in_one_line_and_a_sealed_journal(big_data: Path, tmp_path: Path) -> None:
    journal = tmp_path / "j.journal"
    run = start(*backtest(big_data, journal), cwd=tmp_path)
    wait_until(lambda: journal.exists() and journal.stat().st_size > 0, what="the journal")
    wait_until(lambda: bool(children_of(run.pid)), what="the writer child")
    time.sleep(0.3)
    (writer,) = children_of(run.pid)
    os.kill(writer, signal.SIGKILL)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "the journal writer process died (signal 9)" in lines[0], err
    assert one_file(journal) and verify(journal).ok and verify(journal).status == "failed"
    last = last_record(journal)
    assert isinstance(last, RunFailed) and "writer process died" in last.error


def test_a_killed_backtest_leaves_no_writer_behind_and_its_journal_whole(big_data: Path, tmp_path: Path) -> None:
    journal = tmp_path / "j.journal"
    run = start(*backtest(big_data, journal), cwd=tmp_path)
    wait_until(lambda: journal.exists() and journal.stat().st_size > 0, what="the journal")
    wait_until(lambda: bool(children_of(run.pid)), what="the writer child")
    time.sleep(0.5)
    (writer,) = children_of(run.pid)
    run.kill()  # SIGKILL the run alone: its writer must notice
    run.wait(timeout=10)
    wait_until(lambda: not alive(writer), timeout=10, what="the writer child to exit")
    assert one_file(journal), "the writer child made the journal one file before it exited"
    report = verify(journal)
    assert report.ok and report.status == "running" and report.events > 0
    again = subprocess.run(
        [sys.executable, "-m", "tidemark", *backtest(big_data, journal, "--force")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert verify(journal).status == "finished"


def test_a_full_disk_is_one_line_exit_1_and_a_verifiable_journal(
    big_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The writer child meets SQLITE_FULL (a database capped at 100 pages,
    1.6 MB, stands in for the disk): the run ends with the writer's own words."""
    import multiprocessing

    from tidemark.adapters.cli import main
    from tidemark.journal import child, process_writer

    opened, reopened = process_writer._create, process_writer._reopen

    def small(path: Path, durability: str) -> sqlite3.Connection:
        conn = opened(path, durability)
        conn.execute("PRAGMA max_page_count=100")
        return conn

    def small_again(path: Path, durability: str) -> sqlite3.Connection:
        conn = reopened(path, durability)
        conn.execute("PRAGMA max_page_count=100")
        return conn

    monkeypatch.setattr(process_writer, "_create", small)
    monkeypatch.setattr(process_writer, "_reopen", small_again)
    monkeypatch.setattr(child, "child_context", lambda: multiprocessing.get_context("fork"))
    monkeypatch.setattr(process_writer, "child_context", lambda: multiprocessing.get_context("fork"))
    journal = tmp_path / "full.journal"
    code = main(["backtest", "--data", str(big_data), "--journal", str(journal), "--no-report"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "cannot write the journal: database or disk is full" in err[0], err
    report = verify(journal)
    assert report.ok and report.events > 0, report.message
    if report.status == "failed":  # sealed, where the full database still took the final record
        last = last_record(journal)
        assert isinstance(last, RunFailed) and "database or disk is full" in last.error
    else:
        assert report.status == "running"
