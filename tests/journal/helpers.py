"""Small journal producers for tests."""

from __future__ import annotations

from pathlib import Path

from tidemark.core.bus import Bus
from tidemark.core.events import Bar, Log, RunStarted
from tidemark.journal.writer import JournalWriter


def header() -> RunStarted:
    return RunStarted(0, "test-run", "{}", "h", "{}", "0.0.0")


async def write_journal(path: Path, n: int, *, block_size: int = 4096, durability: str = "normal") -> JournalWriter:
    """A journal of a header plus ``n`` bars, each followed by a log output,
    sealed ``finished`` (the writer appends a RunFinished)."""
    writer = await JournalWriter.create(path, durability=durability, overwrite=True)
    writer._block_size = block_size
    bus = Bus(writer)
    bus.subscribe(Bar, lambda e: bus.publish(Log(e.ts, "t", "info", f"bar {e.ts}")))
    bus.feed(header())
    for i in range(n):
        bus.feed(Bar(1_000 + i, "X", 1.0 + i, 2.0 + i, 0.5, 1.5 + i, 10.0, 60))
        await writer.pump()
    await writer.close()
    return writer
