"""One writer per journal path, on a lock beside the file that outlives the
file's replacement; --force replaces a journal only with a finished run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.journal.helpers import header, write_journal
from tidemark.journal.errors import JournalLockedError
from tidemark.journal.lock import WriterLock, being_written, lock_path
from tidemark.journal.process_writer import ProcessJournalWriter
from tidemark.journal.verify import verify
from tidemark.journal.writer import JournalWriter

ROOT = Path(__file__).resolve().parents[2]


def test_the_lock_outlives_the_journal_being_replaced(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    path.write_bytes(b"old")
    lock = WriterLock(path)
    try:
        other = tmp_path / "other"
        other.write_bytes(b"new")
        os.replace(other, path)  # what --force does at the end of a run
        path.unlink()
        with pytest.raises(JournalLockedError, match="being written by another process"):
            WriterLock(path)
        assert being_written(path)
    finally:
        lock.release()
    assert not lock_path(path).exists() and not being_written(path)
    WriterLock(path).release()


def test_a_second_process_is_refused_while_a_forked_writer_child_holds_the_path(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"

    async def scenario() -> int:
        writer = await ProcessJournalWriter.create(path)
        writer.record(1, header(), True, 0)
        await writer.flush()
        code = "from tidemark.journal.lock import WriterLock\nWriterLock(__import__('sys').argv[1])\n"
        child = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True)
        await writer.close()
        assert "being written by another process" in child.stderr
        return child.returncode

    assert asyncio.run(scenario()) != 0
    assert verify(path).ok and not lock_path(path).exists()


@pytest.mark.asyncio
async def test_overwrite_keeps_the_old_journal_until_the_new_one_finished(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    await write_journal(path, 5)
    old = path.read_bytes()
    writer = await JournalWriter.create(path, overwrite=True)
    assert path.read_bytes() == old, "the old journal stays in place while the new run writes"
    assert writer.path == path
    writer.record(1, header(), True, 0)
    await writer.close("failed", RuntimeError("the new run failed"))
    assert path.read_bytes() == old
    failed = tmp_path / "j.failed.journal"
    assert verify(failed).ok and verify(failed).status == "failed"
    assert writer.sealed is not None and writer.sealed.path == failed

    writer = await JournalWriter.create(path, overwrite=True)
    writer.record(1, header(), True, 0)
    sealed = await writer.close()
    assert sealed.path == path and path.read_bytes() != old
    assert verify(path).ok and verify(path).events == 2
    assert not list(tmp_path.glob("*.partial*")) and not list(tmp_path.glob("*-wal"))


@pytest.mark.asyncio
async def test_a_new_journal_refuses_an_existing_one_without_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    await write_journal(path, 3)
    with pytest.raises(FileExistsError, match="already exists"):
        await ProcessJournalWriter.create(path)
    assert not lock_path(path).exists()
