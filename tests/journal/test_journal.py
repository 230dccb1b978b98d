"""Journal writer/reader: round trip, filters, single writer, tailing, resume."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.journal.helpers import header, write_journal
from tidemark.core.bus import Bus
from tidemark.core.events import Bar, Log, RunFailed
from tidemark.journal.errors import JournalLockedError, SequenceError
from tidemark.journal.export import export
from tidemark.journal.process_writer import ProcessJournalWriter
from tidemark.journal.reader import JournalReader
from tidemark.journal.records import PAGE_SIZE
from tidemark.journal.verify import verify
from tidemark.journal.writer import JournalWriter


@pytest.mark.asyncio
async def test_round_trip_and_filters(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    await write_journal(path, 500, block_size=64)
    with JournalReader(path) as reader:
        events = list(reader.events())
        assert [s for s, _ in events] == list(range(1, 1003))  # and the RunFinished that seals it
        assert reader.counts_by_kind() == {"bar": 500, "finish": 1, "log": 500, "start": 1}
        bars = list(reader.events(kinds=["bar"], since=1_100, until=1_109))
        assert [e.ts for _, e in bars] == list(range(1_100, 1_110))
        assert all(isinstance(e, Bar) for _, e in bars)
        window = [s for s, _ in reader.events(start=100, end=130, inputs=False)]
        assert window == list(range(101, 131, 2))
        records = list(reader.records(start=2, end=3))
        assert [(r.seq, r.is_input, r.cause) for r in records] == [(2, True, 0), (3, False, 2)]
        assert reader.meta["status"] == "finished"
    assert verify(path).ok


@pytest.mark.asyncio
async def test_durability_pragmas_are_read_back_and_recorded(tmp_path: Path) -> None:
    for durability, sync in (("full", "2"), ("normal", "1")):
        path = tmp_path / f"{durability}.journal"
        writer = await JournalWriter.create(path, durability=durability)
        assert not path.exists(), "a new journal is in place only once its header is committed"
        writer.record(1, header(), True, 0)
        await writer.flush()
        with JournalReader(path) as reader:
            meta = reader.meta
        assert (meta["journal_mode"], meta["synchronous"], meta["durability"]) == ("wal", sync, durability)
        assert int(meta["busy_timeout"]) > 0
        assert meta["sqlite_version"].count(".") == 2
        await writer.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("writer_class", [JournalWriter, ProcessJournalWriter])
async def test_new_journals_use_the_large_page_size(tmp_path: Path, writer_class: type) -> None:
    path = tmp_path / "j.journal"
    writer = await writer_class.create(path)
    writer.record(1, header(), True, 0)
    await writer.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    assert verify(path).ok


@pytest.mark.asyncio
async def test_out_of_order_append_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    writer = await JournalWriter.create(path)
    writer.record(1, header(), True, 0)
    with pytest.raises(SequenceError):
        writer.record(3, Log(1, "t", "info", "x"), False, 1)
    with pytest.raises(SequenceError):
        writer.record(1, Log(1, "t", "info", "x"), False, 1)
    await writer.close()
    with JournalReader(path) as reader:
        assert reader.last_seq() == 2  # the header, and the RunFinished that seals it
    assert verify(path).ok


@pytest.mark.asyncio
async def test_second_writer_fails_fast_in_process_and_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    writer = await JournalWriter.create(path)
    with pytest.raises(JournalLockedError):  # locked while it is made, before it is in place
        await JournalWriter.resume(path)
    writer.record(1, header(), True, 0)
    await writer.flush()
    with pytest.raises(JournalLockedError):
        await JournalWriter.resume(path)
    with pytest.raises(JournalLockedError):
        await JournalWriter.create(path, overwrite=True)
    code = (
        "import asyncio,sys\n"
        "from tidemark.journal.writer import JournalWriter\n"
        "from tidemark.journal.errors import JournalLockedError\n"
        f"try:\n    asyncio.run(JournalWriter.resume({str(path)!r}))\n"
        "except JournalLockedError:\n    sys.exit(7)\n"
    )
    child = subprocess.run([sys.executable, "-c", code], timeout=30, cwd=Path(__file__).resolve().parents[2])
    assert child.returncode == 7
    with JournalReader(path) as reader:  # readers are never locked out
        assert reader.meta["status"] == "running"
    await writer.close()


@pytest.mark.asyncio
async def test_tailing_readers_see_a_gap_free_increasing_sequence(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    writer = await JournalWriter.create(path)
    bus = Bus(writer)
    bus.feed(header())
    await writer.flush()
    stop = asyncio.Event()

    async def tail() -> list[int]:
        seen = []
        with JournalReader(path) as reader:
            async for seq, _ in reader.tail(0, poll=0.001, stop=stop):
                seen.append(seq)
        return seen

    readers = [asyncio.create_task(tail()) for _ in range(2)]
    ts = 1
    for _ in range(100):
        for _ in range(100):
            bus.feed(Bar(ts, "X", 1, 1, 1, 1, 1, 1))
            ts += 1
        await writer.flush()
        await asyncio.sleep(0)
    stop.set()
    results = await asyncio.gather(*readers)
    await writer.close()
    for seen in results:
        assert seen == list(range(1, 10_002))


@pytest.mark.asyncio
async def test_resume_continues_numbering_and_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    first = await write_journal(path, 10)
    writer = await JournalWriter.resume(path)
    assert first.sealed is not None
    assert writer.last_seq == 22 and writer.head.hex() == first.sealed.head
    bus = Bus(writer, start_seq=writer.last_seq)
    bus.clock.advance(2_000)
    bus.feed(Bar(2_000, "X", 1, 1, 1, 1, 1, 1))
    await writer.close()
    report = verify(path)
    assert report.ok and report.events == 24


@pytest.mark.asyncio
@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
async def test_export_formats_carry_every_record(tmp_path: Path, fmt: str) -> None:
    import pandas as pd

    path = tmp_path / "j.journal"
    await write_journal(path, 30)
    files = export(path, tmp_path / "out", fmt)
    if fmt == "jsonl":
        lines = files[0].read_text().splitlines()
        assert len(lines) == 62 and '"seq":1' in lines[0]
        return
    frames = {f.stem: (pd.read_parquet(f) if fmt == "parquet" else pd.read_csv(f)) for f in files}
    assert {k: len(v) for k, v in frames.items()} == {"bar": 30, "finish": 1, "log": 30, "start": 1}
    assert list(frames["bar"]["seq"]) == list(range(2, 62, 2))
    assert {"hash", "cause", "input", "close"} <= set(frames["bar"].columns)


def test_a_file_that_is_not_a_journal_is_reported(tmp_path: Path) -> None:
    from tidemark.journal.errors import JournalFormatError

    path = tmp_path / "not.journal"
    path.write_bytes(b"hello, I am not SQLite" * 100)
    report = verify(path)
    assert not report.ok and report.first_bad_seq == 1
    with pytest.raises(JournalFormatError):
        JournalReader(path)
    sqlite3.connect(tmp_path / "empty.db").execute("create table t(x)").connection.commit()
    assert not verify(tmp_path / "empty.db").ok


@pytest.mark.asyncio
async def test_writer_process_names_an_event_that_cannot_be_encoded_and_keeps_the_ones_before(
    tmp_path: Path,
) -> None:
    from tidemark.journal.errors import JournalError
    from tidemark.journal.process_writer import ProcessJournalWriter
    from tidemark.journal.writer import STATUS_FAILED

    path = tmp_path / "bad.journal"
    writer = await ProcessJournalWriter.create(path)
    writer.record(1, header(), True, 0)
    writer.record(2, Log(1, "s", "info", "fine"), False, 1)
    writer.record(3, Log(2, "s", "info", object()), False, 1)  # type: ignore[arg-type]  # not encodable
    writer.record(4, Log(3, "s", "info", "after"), False, 1)
    with pytest.raises(JournalError, match=r"seq 3 \(Log\) cannot be encoded"):
        await writer.flush()
    await writer.close(STATUS_FAILED)
    reader = JournalReader(path)
    try:
        events = list(reader.events())
        assert [seq for seq, _ in events] == [1, 2, 3]  # the two before, and the RunFailed that seals it
        assert isinstance(events[-1][1], RunFailed) and events[-1][1].status == STATUS_FAILED
        assert reader.meta["status"] == STATUS_FAILED
    finally:
        reader.close()
    assert verify(path).ok


@pytest.mark.asyncio
async def test_writer_process_stores_what_the_in_process_writer_stores(tmp_path: Path) -> None:
    """Same records through both writers (bars as a column run in one): same
    payloads, hashes, causes, flags and per-kind counts."""
    import numpy as np

    from tidemark.core.series import BarBlock, InstrumentSeries
    from tidemark.journal.process_writer import ProcessJournalWriter

    n = 10_000
    hour = 3_600_000_000_000
    timeline = 1_600_000_000_000_000_000 + hour * np.arange(1, n + 1, dtype=np.int64)
    close = 100.0 + np.arange(n) * 0.01
    series = InstrumentSeries("X", hour, close, close + 1, close - 1, close, close * 0 + 5, np.ones(n, dtype=bool))
    block = BarBlock(series, timeline, 0, n)
    logs = [Log(int(timeline[k]), "s", "info", f"after bar {k}") for k in range(0, n, 997)]

    async def fill(writer: JournalWriter | ProcessJournalWriter, runs: bool) -> None:
        writer.record(1, header(), True, 0)
        seq, start = 2, 0
        for k, log in zip(range(0, n, 997), logs, strict=True):
            stop = k + 1
            if runs and isinstance(writer, ProcessJournalWriter):
                writer.record_bars(seq, block, start, stop)
                seq += stop - start
            else:
                for bar in block[start:stop]:
                    writer.record(seq, bar, True, 0)
                    seq += 1
            writer.record(seq, log, False, seq - 1)
            seq, start = seq + 1, stop
        await writer.close()

    await fill(await JournalWriter.create(tmp_path / "thread.journal"), runs=False)
    await fill(await ProcessJournalWriter.create(tmp_path / "process.journal"), runs=True)
    with JournalReader(tmp_path / "thread.journal") as a, JournalReader(tmp_path / "process.journal") as b:
        assert a.counts_by_kind() == b.counts_by_kind() == {"bar": 9_971, "finish": 1, "log": 11, "start": 1}
        left = [(r.seq, r.payload, r.hash, r.cause, r.is_input) for r in a.records()]
        right = [(r.seq, r.payload, r.hash, r.cause, r.is_input) for r in b.records()]
        assert left == right
    assert verify(tmp_path / "process.journal").ok
