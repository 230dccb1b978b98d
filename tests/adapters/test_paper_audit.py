"""Paper sessions as auditors need them: signed checkpoints of the chain
head (verify --pubkey), the header committed at once and everything on a
timer (a killed session loses at most the last commit interval), killed
sessions resumed. Against the local USD-M stand-in (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.test_paper import FAST_CROSS, ROOT, SYMBOL, funding_may_lag
from tests.standin.usdm_live import UsdmLiveStandIn
from tidemark.adapters.backtest import replay
from tidemark.adapters.live_feed import FeedSettings
from tidemark.adapters.paper import PaperOptions, run_paper
from tidemark.adapters.rerun import diff_runs, rerun_async
from tidemark.core.events import Checkpoint, RunStarted
from tidemark.journal.reader import JournalReader
from tidemark.journal.signing import new_key
from tidemark.journal.verify import Expectations, verify


@pytest.fixture
def standin(shared_data: Path) -> Iterator[UsdmLiveStandIn]:
    server = UsdmLiveStandIn(shared_data, speed=30)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def strategy_file(tmp_path: Path) -> Path:
    path = tmp_path / "fast_cross.py"
    path.write_text(FAST_CROSS)
    return path


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path, str]:
    private, public, fingerprint = new_key()
    key, pub = tmp_path / "session.pem", tmp_path / "session.pub"
    key.write_bytes(private)
    key.chmod(0o600)
    pub.write_bytes(public)
    return key, pub, fingerprint


def events_of(path: Path) -> list[Any]:
    with JournalReader(path) as reader:
        return [r.event for r in reader.records()]


def test_a_signed_session_verifies_with_its_public_key_and_replays(
    standin: UsdmLiveStandIn, tmp_path: Path, strategy_file: Path, keys: tuple[Path, Path, str]
) -> None:
    key, pub, fingerprint = keys
    options = PaperOptions(
        "binanceusdm",
        [SYMBOL],
        str(strategy_file),
        duration=3.0,
        journal=tmp_path / "signed.journal",
        ccxt_options=standin.ccxt_options(),
        bar_interval="1s",
        settings=FeedSettings(funding_poll=0.2, ticker_poll=0.5),
        config=funding_may_lag(tmp_path),
        signing_key=key,
        checkpoint_every=0.5,
    )
    path = asyncio.run(run_paper(options))
    events = events_of(path)
    header = events[0]
    assert isinstance(header, RunStarted) and json.loads(header.fingerprints)["signing_key"] == fingerprint
    checkpoints = [k + 1 for k, e in enumerate(events) if isinstance(e, Checkpoint)]
    assert len(checkpoints) >= 3
    report = verify(path, expect=Expectations(public_key=str(pub)))
    assert report.ok and report.checkpoints == len(checkpoints) and report.signed_through == checkpoints[-1] - 1
    # the last checkpoint comes after the last input: what follows are the outputs of finishing the run
    last_input = max(k + 1 for k, e in enumerate(events) if not isinstance(e, Checkpoint) and k + 1 < checkpoints[-1])
    assert checkpoints[-1] > last_input
    assert replay(path).ok
    child = asyncio.run(rerun_async(path, journal=tmp_path / "child.journal"))
    diff = diff_runs(path, child)
    assert diff.same_inputs and diff.first_divergence is None
    assert not any(isinstance(e, Checkpoint) for e in events_of(child))


def start_session(standin: UsdmLiveStandIn, strategy: Path, journal: Path, *extra: str) -> subprocess.Popen[bytes]:
    opts_file = journal.with_suffix(".ccxt.json")
    opts_file.write_text(json.dumps(standin.ccxt_options()))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["paper", "--exchange", "binanceusdm", "--symbol", SYMBOL, "--strategy", str(strategy), "--no-status"]
    args += ["--bar", "1s", "--journal", str(journal), "--ccxt-options", str(opts_file)]
    args += ["--config", str(funding_may_lag(journal.parent)), *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "tidemark", *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.exists(), f"{path} never appeared"


def newest_receive_stamp(path: Path) -> int:
    return max((getattr(e, "ts_recv", 0) for e in events_of(path)), default=0)


def test_a_session_commits_its_header_at_once_and_its_data_on_a_timer(
    standin: UsdmLiveStandIn, tmp_path: Path, strategy_file: Path
) -> None:
    for k in range(3):  # killed soon after the journal appears: the header is there
        journal = tmp_path / f"early{k}.journal"
        proc = start_session(standin, strategy_file, journal)
        wait_for(journal)
        time.sleep(0.15)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        events = events_of(journal)
        assert events and isinstance(events[0], RunStarted), "the header is committed before anything else"
        assert verify(journal).ok

    journal = tmp_path / "timer2.journal"
    proc = start_session(standin, strategy_file, journal)
    wait_for(journal)
    # While the session runs, an outside reader sees its received data
    # committed again and again (every 0.25 s). The lag is judged by its best
    # sample so that a busy machine (two test processes on two cores, a slower
    # CI machine) stalling the session for a while does not count as a lost
    # commit; commits by batch size alone would show nothing for the whole session.
    lags: list[float] = []
    stamps: set[int] = set()
    deadline = time.monotonic() + 30
    while len(stamps) < 8 and time.monotonic() < deadline:
        time.sleep(0.25)
        stamp = newest_receive_stamp(journal)
        if stamp:
            stamps.add(stamp)
            lags.append((time.time_ns() - stamp) / 1e9)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert len(stamps) >= 8, f"received data was committed only {len(stamps)} times in 30 s"
    assert min(lags) <= 1.0, f"committed data was at best {min(lags):.2f} s behind what the session received"
    resumed = subprocess.run(
        [sys.executable, "-m", "tidemark", "paper", "--resume", str(journal), "--duration", "2s", "--no-status"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert verify(journal).ok and verify(journal).status == "finished"
    assert replay(journal).ok
