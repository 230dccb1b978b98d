"""A sealed journal is one self-contained file, even while readers hold it;
a killed writer's journal is made one file again by verify --repair, with
every committed record kept."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.journal.helpers import header
from tests.journal.test_crash import run_and_kill
from tidemark.adapters.cli import main
from tidemark.core.bus import Bus
from tidemark.core.events import Bar
from tidemark.journal.process_writer import ProcessJournalWriter
from tidemark.journal.reader import JournalReader
from tidemark.journal.repair import repair
from tidemark.journal.verify import verify
from tidemark.journal.writer import JournalWriter


def hold_a_read_transaction(path: Path, seconds: float) -> threading.Thread:
    """A reader in the middle of a read transaction for ``seconds``: it
    blocks the checkpoint that would empty the -wal."""
    started = threading.Event()

    def read() -> None:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN")
        conn.execute("SELECT COUNT(*) FROM blocks").fetchone()
        started.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=read)
    thread.start()
    started.wait()
    return thread


def test_a_seal_waits_for_a_reader_and_leaves_one_file(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"

    async def scenario() -> tuple[bool, int]:
        writer = await JournalWriter.create(path)
        bus = Bus(writer)
        bus.feed(header())
        for ts in range(1, 3000):
            bus.feed(Bar(ts, "X", 1, 1, 1, 1, 1, 1))
        await writer.flush()
        reader = hold_a_read_transaction(path, 1.0)
        sealed = await writer.close()
        reader.join()
        return sealed.one_file, sealed.events

    one_file, events = asyncio.run(scenario())
    assert one_file and events == 3001
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
    alone = tmp_path / "alone" / "j.journal"  # the file by itself is the whole journal
    alone.parent.mkdir()
    shutil.copyfile(path, alone)
    assert verify(alone).ok and verify(alone).events == 3001


def test_repair_makes_a_killed_writers_journal_one_file_and_keeps_every_committed_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "killed.journal"
    acked = run_and_kill(path, resume=False, delay=0.3, sig=signal.SIGKILL)
    wal = Path(f"{path}-wal")
    assert wal.exists() and wal.stat().st_size > 0, "a killed writer leaves its commits in the -wal"
    before = verify(path)
    assert before.ok and before.events >= acked and before.status == "running"
    assert main(["verify", str(path), "--repair"]) == 0
    out = capsys.readouterr().out
    assert "repaired:" in out and "one file" in out and "crashed-recovered" in out
    assert not wal.exists()
    after = verify(path)
    assert after.ok and (after.events, after.head) == (before.events, before.head)
    assert after.status == "crashed-recovered"
    with JournalReader(path) as reader:
        assert [s for s, _ in reader.events()] == list(range(1, before.events + 1))


def test_repair_refuses_a_journal_being_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tidemark.journal.errors import JournalLockedError

    async def scenario() -> None:
        path = tmp_path / "live.journal"
        writer = await JournalWriter.create(path)
        writer.record(1, header(), True, 0)
        await writer.flush()
        with pytest.raises(JournalLockedError):
            repair(path)
        await writer.close()

    asyncio.run(scenario())


def test_repair_of_a_writer_killed_after_its_final_record_takes_the_chains_status(tmp_path: Path) -> None:
    """Killed between committing RunFinished and sealing: meta still says
    running; repaired, it says what the chain says (seen once in 210 CI kills)."""
    from tidemark.adapters.backtest import SAMPLE_DIR, run_backtest

    journal = tmp_path / "run.journal"
    run_backtest("ema_cross", data=[SAMPLE_DIR / "SYNTH_BTC-1h.csv"], journal=journal)
    with sqlite3.connect(journal) as conn:
        conn.execute("UPDATE meta SET value = 'running' WHERE key = 'status'")
    conn.close()
    assert not verify(journal).ok
    repaired = repair(journal)
    assert repaired.status == "finished"
    report = verify(journal)
    assert report.ok and report.status == "finished"


@pytest.mark.asyncio
@pytest.mark.parametrize("writer_class", [JournalWriter, ProcessJournalWriter])
async def test_a_new_journal_appears_with_its_header_and_a_killed_creation_leaves_nothing_behind(
    tmp_path: Path, writer_class: type
) -> None:
    """Both writers make a new journal beside its path and move it into
    place once its first records (the header) are committed, so the path
    never holds a half-made or header-less journal (the crash loop once
    killed a run between the tables and meta: a file with no format, which
    verify called damaged; a paper session killed before its header left a
    journal with no records). What a killed creation left is cleared by the
    next writer of the path."""
    path = tmp_path / "new.journal"
    staging = tmp_path / "new.journal.creating"
    staging.write_bytes(b"left by a creation that was killed")
    Path(f"{staging}-wal").write_bytes(b"x")
    writer = await writer_class.create(path)
    assert not path.exists()
    writer.record(1, header(), True, 0)
    await writer.flush()
    assert not [p.name for p in tmp_path.iterdir() if ".creating" in p.name]
    report = verify(path)
    assert report.ok and report.events == 1 and report.status == "being written"
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 16_384
    finally:
        conn.close()  # (a ``with`` block would leave it open: the seal waits for readers)
    await writer.close()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["new.journal"]
    assert verify(path).status == "finished"


@pytest.mark.asyncio
@pytest.mark.parametrize("writer_class", [JournalWriter, ProcessJournalWriter])
async def test_a_writer_closed_before_any_record_leaves_its_empty_journal_in_place(
    tmp_path: Path, writer_class: type
) -> None:
    path = tmp_path / "empty.journal"
    writer = await writer_class.create(path)
    await writer.close()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["empty.journal"]
    assert verify(path).ok


def _renames_then_syncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record, in order, each rename's target and each fsync of a directory."""
    import os

    seen: list[tuple[str, str]] = []
    replace, fsync = os.replace, os.fsync

    def recording_replace(src: object, dst: object) -> None:
        replace(src, dst)  # type: ignore[arg-type]
        seen.append(("rename", str(dst)))

    def recording_fsync(fd: int) -> None:
        fsync(fd)
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            seen.append(("sync dir", os.readlink(f"/proc/self/fd/{fd}")))

    monkeypatch.setattr(os, "replace", recording_replace)
    monkeypatch.setattr(os, "fsync", recording_fsync)
    return seen


@pytest.mark.asyncio
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads which file a descriptor is from /proc")
async def test_moving_a_journal_into_place_syncs_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rename is durable only once its directory is synced: without it a
    power loss could leave a sealed journal under its staging name."""
    seen = _renames_then_syncs(monkeypatch)
    path = tmp_path / "new.journal"
    writer = await JournalWriter.create(path)
    writer.record(1, header(), True, 0)
    await writer.flush()
    await writer.close()
    assert seen[:2] == [("rename", str(path)), ("sync dir", str(tmp_path))]
    seen.clear()
    # --force: the new journal is written beside the old one and renamed over it when sealed
    again = await JournalWriter.create(path, overwrite=True)
    again.record(1, header(), True, 0)
    await again.close()
    renames = [k for k, (what, _) in enumerate(seen) if what == "rename" and seen[k][1] == str(path)]
    assert renames and seen[renames[-1] + 1] == ("sync dir", str(tmp_path))
    assert verify(path).ok
