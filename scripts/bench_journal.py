"""Benchmark the journal: append (encode + chain hash + commit) and read back.

A realistic mix per 20 events: 16 bars, then a submit, an acceptance, a fill
and a position change; an account snapshot every 1,000 events. Events are
built before timing. Prints events/s for:

* append with the in-process aiosqlite writer (paper mode's writer),
* append with the writer process (backtests): the simulation thread's own
  cost, and end to end until every record is committed,
* read + decode of the whole journal, and a full verify.

    python scripts/bench_journal.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tidemark.core.events import (
    AccountSnapshot,
    Bar,
    Event,
    OrderAccepted,
    OrderFilled,
    PositionChanged,
    RunStarted,
    SubmitOrder,
)
from tidemark.journal.process_writer import ProcessJournalWriter
from tidemark.journal.reader import JournalReader
from tidemark.journal.verify import verify
from tidemark.journal.writer import JournalWriter


def event_mix(n: int) -> list[tuple[Event, bool, int]]:
    out: list[tuple[Event, bool, int]] = [(RunStarted(0, "bench", "{}", "h", "{}", "0"), True, 0)]
    price = 100.0
    k = 0
    while len(out) < n:
        ts = 60_000_000_000 * (k + 1)
        k += 1
        price *= 1.0001 if k % 3 else 0.9998
        out.append((Bar(ts, "BTCUSDT", price, price * 1.001, price * 0.999, price, 12.5, 60_000_000_000), True, 0))
        cause = len(out)
        if k % 16 == 0:
            oid = f"s-{k}"
            out.append((SubmitOrder(ts, "ema_cross", oid, "BTCUSDT", "buy", 1.0), False, cause))
            out.append((OrderAccepted(ts, "ema_cross", oid, "BTCUSDT"), False, cause + 1))
            out.append(
                (
                    OrderFilled(
                        ts,
                        "ema_cross",
                        oid,
                        f"{oid}.1",
                        "BTCUSDT",
                        "buy",
                        1.0,
                        price,
                        ts,
                        0.0,
                        "taker",
                        price * 4e-4,
                        "USD",
                        "bps",
                        0.0,
                        "none",
                    ),
                    False,
                    cause,
                )
            )
            out.append((PositionChanged(ts, "ema_cross", "BTCUSDT", 1.0, price, 0.0, 0.0), False, cause))
        if k % 800 == 0:
            out.append((AccountSnapshot(ts, 1e6, 1e6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), False, cause))
    return out[:n]


async def append(
    writer: JournalWriter | ProcessJournalWriter, events: list[tuple[Event, bool, int]]
) -> tuple[float, float]:
    record = writer.record
    pump = writer.pump
    start = time.perf_counter()
    for seq, (event, is_input, cause) in enumerate(events, 1):
        record(seq, event, is_input, cause)
        if seq & 4095 == 0:
            await pump()
    appended = time.perf_counter() - start
    await writer.flush()
    committed = time.perf_counter() - start
    await writer.close()
    return appended, committed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    n = parser.parse_args().events
    events = event_mix(n)
    with tempfile.TemporaryDirectory() as tmp:
        a = Path(tmp) / "inproc.journal"
        b = Path(tmp) / "process.journal"
        in_appended, in_committed = asyncio.run(_inproc(a, events))
        pr_appended, pr_committed = asyncio.run(_process(b, events))
        start = time.perf_counter()
        count = 0
        with JournalReader(b) as reader:
            for _, batch in reader.batches():
                count += len(batch)
        read = time.perf_counter() - start
        start = time.perf_counter()
        report = verify(b)
        verified = time.perf_counter() - start
        same = verify(a).head == report.head
        size = b.stat().st_size / 1e6
    print(f"events: {n:,} (bars 80%, orders/fills/positions 20%, snapshots); journal {size:.0f} MB")
    print(
        f"append, in-process aiosqlite writer: {n / in_committed:>12,.0f} events/s committed (record only: {n / in_appended:,.0f}/s)"
    )
    print(
        f"append, writer process:              {n / pr_committed:>12,.0f} events/s committed (simulation thread: {n / pr_appended:,.0f}/s)"
    )
    print(f"read + decode:                       {count / read:>12,.0f} events/s")
    print(f"verify (integrity + chain):          {report.events / verified:>12,.0f} events/s  ok={report.ok}")
    print(f"both writers give the same chain head: {same}")


async def _inproc(path: Path, events: list[tuple[Event, bool, int]]) -> tuple[float, float]:
    return await append(await JournalWriter.create(path, overwrite=True), events)


async def _process(path: Path, events: list[tuple[Event, bool, int]]) -> tuple[float, float]:
    return await append(await ProcessJournalWriter.create(path, overwrite=True), events)


if __name__ == "__main__":
    main()
