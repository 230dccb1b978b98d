"""Replay reads a one-instrument journal's bars as columns, exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tidemark.adapters.backtest import SAMPLE_DIR, replay, run_backtest
from tidemark.core.codec import DEFAULT_CODEC
from tidemark.core.events import Bar, RunStarted
from tidemark.core.series import BarBlock
from tidemark.journal.bar_columns import bar_inputs
from tidemark.journal.blocks import decode_blocks
from tidemark.journal.reader import JournalReader
from tidemark.journal.writer import JournalWriter

SAMPLES = SAMPLE_DIR


def columns_of(path: Path):
    with JournalReader(path) as reader:
        blocks = decode_blocks(reader)
    return bar_inputs(blocks)


def inputs_of(path: Path) -> list[bytes]:
    with JournalReader(path) as reader:
        return [bytes(r.payload) for r in reader.records() if r.is_input]


def test_a_backtest_journal_reads_as_columns_holding_exactly_its_inputs(tmp_path: Path, sample_csv: Path) -> None:
    path = tmp_path / "j.journal"
    run_backtest("ema_cross", data=[sample_csv], journal=path)
    columns = columns_of(path)
    assert columns is not None
    fed: list[bytes] = []
    for steps in columns.steps:
        for step in steps:
            fed.extend(map(DEFAULT_CODEC.encode, step) if isinstance(step, BarBlock) else [DEFAULT_CODEC.encode(step)])
    assert fed == inputs_of(path)  # every input, in order, byte for byte
    with JournalReader(path) as reader:
        bars = [r.event for r in reader.records() if type(r.event) is Bar]
    assert columns.market.timeline.tolist() == [bar.ts for bar in bars]
    assert columns.market.instruments[bars[0].instrument].close.tolist() == [bar.close for bar in bars]
    assert replay(path).ok


def test_a_journal_of_two_instruments_is_replayed_event_by_event(tmp_path: Path) -> None:
    path = tmp_path / "two.journal"
    run_backtest("ema_cross", data=sorted(SAMPLES.glob("*.csv"))[:2], journal=path)
    assert columns_of(path) is None
    assert replay(path).ok


def test_bars_out_of_time_order_are_not_read_as_columns(tmp_path: Path) -> None:
    path = tmp_path / "backwards.journal"

    async def write() -> None:
        writer = await JournalWriter.create(path)
        writer.record(1, RunStarted(0, "r", "{}", "h", "{}", "0", 0, "", "backtest"), True, 0)
        for seq, ts in enumerate([3 << 40, 2 << 40, 4 << 40], 2):
            writer.record(seq, Bar(ts, "X", 1.0, 1.0, 1.0, 1.0, 1.0, 60), True, 0)
        await writer.close()

    asyncio.run(write())
    assert columns_of(path) is None
