"""SIGKILL a writing process at random moments: the journal always opens,
verifies, keeps every acknowledged commit as a gap-free prefix, and resumes
at the next seq."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tidemark.journal.reader import JournalReader
from tidemark.journal.verify import verify
from tidemark.journal.writer import STATUS_RECOVERED, JournalWriter

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("TIDEMARK_CRASH_KILLS", "20"))


def run_and_kill(path: Path, resume: bool, delay: float, sig: int = signal.SIGKILL) -> int:
    """Start a writer, kill it with ``sig`` after ``delay`` s of writing; last acked seq."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.journal.crash_child", str(path), "resume" if resume else "new"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acked = 0
    first = child.stdout.readline()  # wait until it is really writing
    assert first.startswith("ack"), first
    acked = int(first.split()[1])
    deadline = time.monotonic() + delay
    os.set_blocking(child.stdout.fileno(), False)
    while time.monotonic() < deadline:
        time.sleep(0.002)
    child.send_signal(sig)
    child.wait(timeout=10)
    rest = child.stdout.read() or ""
    for line in rest.splitlines():
        if line.startswith("ack ") and line[4:].strip().isdigit():
            acked = max(acked, int(line[4:]))
    return acked


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_acknowledged_commits(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    path = tmp_path / "crash.journal"
    previous = 0
    for kill in range(KILLS):
        acked = run_and_kill(path, resume=kill > 0, delay=rng.uniform(0.0, 0.4))
        report = verify(path)
        assert report.ok, f"kill {kill}: {report.message}"
        assert report.events >= acked >= previous, f"kill {kill}: {report.events} stored, {acked} acknowledged"
        with JournalReader(path) as reader:
            seqs = [s for s, _ in reader.events()]
        assert seqs == list(range(1, report.events + 1))
        previous = report.events

    async def reopen() -> tuple[int, str]:
        writer = await JournalWriter.resume(path)
        last = writer.last_seq
        await writer.close()
        with JournalReader(path) as reader:
            return last, reader.meta["status"]

    last, status = asyncio.run(reopen())
    assert last == previous
    assert status == "finished"


def test_a_crashed_run_is_sealed_crashed_recovered(tmp_path: Path) -> None:
    path = tmp_path / "crash.journal"
    run_and_kill(path, resume=False, delay=0.05)
    with JournalReader(path) as reader:
        assert reader.meta["status"] == "running"

    async def reopen() -> str:
        writer = await JournalWriter.resume(path)
        with JournalReader(path) as reader:
            status = reader.meta["status"]
        await writer.abort()
        return status

    assert asyncio.run(reopen()) == STATUS_RECOVERED
