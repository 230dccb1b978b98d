"""Kill backtests and their writer processes at random moments (SIGKILL,
SIGTERM, SIGHUP; 3 x KILLS trials in the slow tier), and paper sessions
killed and resumed. After every kill: no process is left, every record an
outside reader saw committed is still there, the journal is one file that
verifies (after ``verify --repair`` only when both processes were killed
outright) and is a prefix of a clean run, and a rerun to the same path
starts at once."""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from scripts.make_sample_data import synth
from tests.adapters.test_run_lifecycle import alive, children_of, one_file
from tidemark.adapters.cli import main
from tidemark.core.events import RunFailed
from tidemark.journal.reader import JournalReader
from tidemark.journal.repair import repair
from tidemark.journal.verify import verify

KILLS = int(os.environ.get("TIDEMARK_CRASH_KILLS", "70"))
"""Trials per target (three targets: at least 200 kills in all)."""
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "MID-1h.csv"
    synth("MID", 11, 30_000.0, bars=60_000).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def reference(data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The chain hash of every record of a clean run (by seq - 1)."""
    path = tmp_path_factory.mktemp("reference") / "clean.journal"
    assert quiet_main("backtest", "--data", str(data), "--journal", str(path), "--no-report") == 0
    return chain_of(path)


def chain_of(path: Path) -> list[str]:
    """Every record's chain hash, in seq order (read as stored, not decoded)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        blobs = [bytes(row[0]) for row in conn.execute("SELECT hashes FROM blocks ORDER BY first_seq")]
    return [blob[i : i + 32].hex() for blob in blobs for i in range(0, len(blob), 32)]


def quiet_main(*args: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(list(args))


def fork_backtest(data: Path, journal: Path, log: Path, *extra: str) -> int:
    """A backtest in a forked copy of this process (no interpreter start-up
    per trial), as the CLI runs it; returns its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            os.setsid()
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            code = main(["backtest", "--data", str(data), "--journal", str(journal), "--no-report", *extra])
        finally:
            os._exit(code)
    return pid


def committed(path: Path) -> int:
    """The last seq an outside reader sees committed (0 if none yet)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2)) as conn:
            return int(conn.execute("SELECT COALESCE(MAX(first_seq + n - 1), 0) FROM blocks").fetchone()[0])
    except sqlite3.Error:
        return 0


def reap(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    return None


def trial(
    rng: random.Random, target: str, data: Path, reference: list[str], folder: Path, k: int
) -> tuple[str, bool, bool]:
    """One run killed at a random moment; returns (signal name, whether the
    kill landed during the run, whether repair was needed)."""
    journal = folder / f"crash{k}.journal"
    log = folder / f"crash{k}.log"
    sig = rng.choice(SIGNALS)
    pid = fork_backtest(data, journal, log)
    deadline = time.monotonic() + 60
    while not (journal.exists() and children_of(pid)) and time.monotonic() < deadline:
        if reap(pid, 0.0) is not None:
            pytest.fail(f"trial {k}: the run ended before writing: {log.read_text()[-500:]}")
        time.sleep(0.002)
    time.sleep(rng.uniform(0.0, 0.6))
    writers = children_of(pid)
    seen = committed(journal)
    landed = bool(writers) and alive(pid)
    if target in ("run", "both"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    if target in ("writer", "both"):
        for writer in writers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(writer, sig)
    code = reap(pid, 60)
    assert code is not None, f"trial {k}: the run did not end after {signal.Signals(sig).name} to the {target}"
    deadline = time.monotonic() + 10
    while any(alive(w) for w in writers) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(alive(w) for w in writers), f"trial {k}: an orphan writer after {signal.Signals(sig).name}"
    needed_repair = not one_file(journal)
    if needed_repair:
        # only a run and a writer both killed outright leave the -wal behind
        assert target == "both" and sig == signal.SIGKILL, f"trial {k}: {target} {sig!r} left a -wal: {log.read_text()}"
        repaired = repair(journal)
        assert repaired.one_file
    report = verify(journal)
    assert report.ok, f"trial {k}: {report.message}"
    assert report.events >= seen, f"trial {k}: {seen} records were committed, {report.events} remain"
    with JournalReader(journal) as reader:
        final = reader.final()
    stored = chain_of(journal)
    prefix = stored[:-1] if isinstance(final, RunFailed) else stored
    assert prefix == reference[: len(prefix)], f"trial {k}: the journal is not a prefix of a clean run"
    if k % 14 == 0:  # a rerun to the same path starts at once: nothing holds the lock
        again = fork_backtest(data, journal, log, "--force")
        assert reap(again, 120) == 0, f"trial {k}: the rerun failed: {log.read_text()[-500:]}"
        assert verify(journal).status == "finished"
    return signal.Signals(sig).name, landed, needed_repair


@pytest.mark.slow
@pytest.mark.parametrize("target", ["run", "writer", "both"])
def test_backtests_killed_at_random_moments(
    target: str, data: Path, reference: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(f"crash-{target}")
    outcomes = [trial(rng, target, data, reference, tmp_path, k) for k in range(KILLS)]
    with capsys.disabled():
        signals = Counter(name for name, _, _ in outcomes)
        landed = sum(1 for _, hit, _ in outcomes if hit)
        repaired = sum(1 for _, _, fixed in outcomes if fixed)
        print(f"\n{target}: {KILLS} kills {dict(signals)}, {landed} during the run, {repaired} needed --repair")


def test_one_killed_backtest(data: Path, reference: list[str], tmp_path: Path) -> None:
    """The fast tier: one trial per target."""
    rng = random.Random("fast")
    for k, target in enumerate(["run", "writer", "both"]):
        trial(rng, target, data, reference, tmp_path, k + 1)


# -- paper sessions --------------------------------------------------------------------------------

PAPER_KILLS = int(os.environ.get("TIDEMARK_PAPER_KILLS", "12"))
PAPER_SIGNALS = (signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGHUP)
"""Half the paper kills are outright: those are the ones resumed."""


@pytest.mark.slow
def test_paper_sessions_killed_at_random_moments_and_resumed(shared_data: Path, tmp_path: Path) -> None:
    """A chain of paper sessions on one journal, each killed at a random
    moment and resumed; a SIGTERM or SIGHUP ends a session cleanly, and the
    next one starts a new journal."""
    import subprocess
    import sys

    from tests.adapters.test_paper import FAST_CROSS, ROOT, SYMBOL, funding_may_lag
    from tests.standin.usdm_live import UsdmLiveStandIn
    from tidemark.adapters.backtest import replay

    server = UsdmLiveStandIn(shared_data, speed=30)
    server.start()
    try:
        strategy = tmp_path / "fast_cross.py"
        strategy.write_text(FAST_CROSS)
        opts = tmp_path / "ccxt.json"
        opts.write_text(__import__("json").dumps(server.ccxt_options()))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        rng = random.Random("paper")
        journals: list[Path] = []
        journal: Path | None = None
        outcomes: Counter[str] = Counter()
        for k in range(PAPER_KILLS):
            if journal is None:
                journal = tmp_path / f"paper{k}.journal"
                journals.append(journal)
                args = ["paper", "--exchange", "binanceusdm", "--symbol", SYMBOL, "--strategy", str(strategy)]
                args += ["--bar", "1s", "--journal", str(journal), "--ccxt-options", str(opts), "--no-status"]
                args += ["--config", str(funding_may_lag(tmp_path))]
            else:
                args = ["paper", "--resume", str(journal), "--no-status", "--ccxt-options", str(opts)]
            before = verify(journal).events if journal.exists() else 0
            proc = subprocess.Popen(
                [sys.executable, "-m", "tidemark", *args],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.monotonic() + 60
            while committed(journal) <= before and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
            assert proc.poll() is None, f"session {k} ended early: {proc.stderr.read()[-1000:] if proc.stderr else ''}"
            time.sleep(rng.uniform(0.2, 2.5))
            sig = rng.choice(PAPER_SIGNALS)
            seen = committed(journal)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=60)
            outcomes[signal.Signals(sig).name] += 1
            report = verify(journal)
            assert report.ok, f"session {k}: {report.message}"
            assert report.events >= seen, f"session {k}: {seen} committed, {report.events} remain"
            if sig == signal.SIGKILL:
                assert report.status in ("running", "crashed-recovered")
                continue  # resumed by the next session
            assert proc.returncode == 0, f"session {k}: {err[-1000:]}"
            assert report.status == "finished" and one_file(journal)
            journal = None
        if journal is not None:  # the last one was killed outright: make it one file
            assert repair(journal).one_file
        for path in journals:
            assert one_file(path) and verify(path).ok
            assert replay(path).ok, path
        print(f"\npaper: {PAPER_KILLS} kills {dict(outcomes)} over {len(journals)} journals")
    finally:
        server.stop()
