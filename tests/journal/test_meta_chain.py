"""Everything a journal says about its run is under the chain: the header is
record 1, the final status is the last record (a failed run ends with
RunFailed naming its error), and the ``meta`` table is a cache that verify
holds to them, naming what differs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.journal.forge import set_meta, set_payload
from tidemark.adapters.backtest import SAMPLE_DIR, replay, replay_verified, run_backtest
from tidemark.core.bus import BusFault
from tidemark.core.codec import encode
from tidemark.core.events import Log, RunFailed, RunFinished
from tidemark.journal.reader import JournalReader
from tidemark.journal.verify import verify

SAMPLE = SAMPLE_DIR / "SYNTH_BTC-1h.csv"
RAISES = """
def schema():
    return {"id": "raises"}


def on_bar(ctx, i):
    if i == 40:
        raise ValueError("the strategy gave up at bar 40")
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("meta") / "finished.journal"
    run_backtest("ema_cross", data=[SAMPLE], journal=path, end="2024-02-15", initial_cash=100_000.0)
    assert verify(path).ok
    return path


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("failed")
    strategy = folder / "raises.py"
    strategy.write_text(RAISES)
    path = folder / "failed.journal"
    with pytest.raises(BusFault, match="the strategy gave up"):
        run_backtest(str(strategy), data=[SAMPLE], journal=path, end="2024-02-15")
    return path


Copy = Callable[[Path], Path]


@pytest.fixture
def copy_of(tmp_path: Path) -> Copy:
    def copy(source: Path) -> Path:
        target = tmp_path / source.name
        shutil.copyfile(source, target)
        return target

    return copy


def last_event(path: Path) -> object:
    with JournalReader(path) as reader:
        return list(reader.events(start=reader.last_seq()))[-1][1]


@pytest.mark.parametrize(
    ("key", "edit"),
    [
        ("config", lambda v: v.replace('"initial_cash":100000.0', '"initial_cash":200000.0')),
        ("run_id", lambda v: "0123456789abcdef"),
        ("fingerprints", lambda v: v.replace('"sha256":"', '"sha256":"0')),
        ("seed", lambda v: "7"),
        ("parent_run_id", lambda v: "somebody"),
        ("package_version", lambda v: "9.9.9"),
    ],
)
def test_an_edited_header_field_in_meta_fails_verify_by_name(
    finished: Path, copy_of: Copy, key: str, edit: Callable[[str], str]
) -> None:
    path = copy_of(finished)
    with JournalReader(path) as reader:
        value = reader.meta[key]
    assert edit(value) != value
    set_meta(path, key, edit(value))
    report = verify(path)
    assert not report.ok and report.problem.startswith(f"meta.{key} disagrees with the run header (seq 1)")
    assert report.events == verify(finished).events  # every record is fine: the cache is not
    checked = replay_verified(path)
    assert not checked.ok and checked.replay is None


def test_a_failed_run_ends_with_its_error_under_the_chain(failed: Path) -> None:
    report = verify(failed)
    assert report.ok and report.status == "failed"
    last = last_event(failed)
    assert isinstance(last, RunFailed) and last.status == "failed" and last.fault_seq > 0
    assert "ValueError('the strategy gave up at bar 40')" in last.error
    assert last.trace and last.trace[-1].startswith("raises.py:") and last.trace[-1].endswith("in on_bar")


def test_a_failed_run_replays_to_the_same_failure(failed: Path) -> None:
    report = replay(failed)
    assert report.ok, report.divergence
    assert report.inputs + report.outputs == verify(failed).events


def test_a_failed_run_relabelled_finished_fails_verify(failed: Path, copy_of: Copy) -> None:
    path = copy_of(failed)
    set_meta(path, "status", "finished")
    report = verify(path)
    assert not report.ok
    assert report.problem.startswith("meta.status is 'finished' but the chain ends with RunFailed (status 'failed')")


def test_a_finished_run_relabelled_failed_fails_verify(finished: Path, copy_of: Copy) -> None:
    path = copy_of(finished)
    assert isinstance(last_event(path), RunFinished)
    set_meta(path, "status", "failed")
    report = verify(path)
    assert not report.ok and "but the chain ends with RunFinished (status 'finished')" in report.problem


def test_a_run_without_a_final_record_cannot_claim_an_ending(finished: Path, copy_of: Copy) -> None:
    """A forger who replaces the final record (and re-chains) leaves a journal
    that claims no ending: meta's 'finished' no longer holds."""
    path = copy_of(finished)
    last = last_event(path)
    assert isinstance(last, RunFinished)
    with JournalReader(path) as reader:
        seq = reader.last_seq()
    set_payload(path, seq, encode(Log(last.ts, "forger", "info", "nothing to see")))
    report = verify(path)
    assert not report.ok
    assert report.problem.startswith("meta.status is 'finished' but the chain has no final record")


def test_a_key_the_writer_never_writes_fails_verify(finished: Path, copy_of: Copy) -> None:
    import sqlite3

    path = copy_of(finished)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('audited_by', 'a friend')")
    report = verify(path)
    assert not report.ok and report.problem == "meta has keys the writer never writes: audited_by"


def test_a_replay_that_fails_differently_is_a_divergence(failed: Path, copy_of: Copy) -> None:
    import msgspec

    path = copy_of(failed)
    last = last_event(path)
    assert isinstance(last, RunFailed)
    with JournalReader(path) as reader:
        seq = reader.last_seq()
    forged = msgspec.structs.replace(last, error=last.error.replace("bar 40", "bar 41"))
    set_payload(path, seq, encode(forged))
    assert verify(path).ok  # re-chained: only replay can tell
    report = replay(path)
    assert not report.ok and report.divergence is not None
    assert report.divergence.seq == seq and report.divergence.reason.startswith("replay failed differently")
