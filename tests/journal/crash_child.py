"""Child process for the crash test: appends forever, printing each
acknowledged (committed) seq; the parent kills it with SIGKILL."""

from __future__ import annotations

import asyncio
import sys

from tests.journal.helpers import header
from tidemark.core.bus import Bus
from tidemark.core.events import Bar, Log
from tidemark.journal.writer import JournalWriter


async def main(path: str, resume: bool) -> None:
    writer = await (JournalWriter.resume(path) if resume else JournalWriter.create(path, durability="full"))
    writer._block_size = 37
    bus = Bus(writer, start_seq=writer.last_seq)
    bus.subscribe(Bar, lambda e: bus.publish(Log(e.ts, "c", "info", "x")))
    if not resume:
        bus.feed(header())
    ts = 1_000_000 + writer.last_seq
    bus.clock.advance(ts)
    while True:
        for _ in range(25):
            ts += 1
            bus.feed(Bar(ts, "X", 1.0, 1.0, 1.0, 1.0, 1.0, 1))
        durable = await writer.flush()
        print(f"ack {durable}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] == "resume"))
