"""Replay names the first record whose regenerated output differs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from adapters.backtest import replay, run_backtest
from core.events import Event, OrderFilled, PositionChanged
from journal.reader import JournalReader, Record
from journal.writer import JournalWriter

Edit = Callable[[Record], tuple[Event, int]]


SAMPLE = Path(__file__).resolve().parents[2] / "adapters" / "sample_data" / "SYNTH_BTC-1h.csv"


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "ema.journal"
    run_backtest("ema_cross", data=[SAMPLE], journal=path)
    return path


def rewritten(source: Path, target: Path, edit: Edit, *, stop: int | None = None) -> None:
    """Copy ``source`` record by record through ``edit`` (re-chained, so the
    copy verifies), up to seq ``stop``."""

    async def write() -> None:
        writer = await JournalWriter.create(target)
        with JournalReader(source) as reader:
            for record in reader.records():
                if stop is not None and record.seq > stop:
                    break
                event, cause = edit(record)
                writer.record(record.seq, event, record.is_input, cause)
        await writer.close()

    asyncio.run(write())


def seqs_of(path: Path, kind: type[Event]) -> list[int]:
    with JournalReader(path) as reader:
        return [r.seq for r in reader.records() if type(r.event) is kind]


def test_an_unchanged_copy_replays(original: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.journal"
    rewritten(original, copy, lambda r: (r.event, r.cause))
    report = replay(copy)
    assert report.ok and report.divergence is None
    assert report.outputs == sum(1 for _ in JournalReader(copy).records() if not _.is_input)


@pytest.mark.parametrize("which", [0, 7, -1])
def test_a_changed_output_is_reported_at_its_seq(original: Path, tmp_path: Path, which: int) -> None:
    target = seqs_of(original, OrderFilled)[which]
    forged = tmp_path / "forged.journal"

    def nudge(record: Record) -> tuple[Event, int]:
        if record.seq == target:
            event = record.event
            assert isinstance(event, OrderFilled)
            return msgspec.structs.replace(event, price=event.price * (1 + 1e-12)), record.cause
        return record.event, record.cause

    rewritten(original, forged, nudge)
    report = replay(forged)
    assert not report.ok and report.divergence is not None
    assert (report.divergence.seq, report.divergence.reason) == (target, "output differs from the journal")


def test_a_changed_cause_is_reported_at_its_seq(original: Path, tmp_path: Path) -> None:
    target = seqs_of(original, PositionChanged)[3]
    forged = tmp_path / "cause.journal"
    rewritten(original, forged, lambda r: (r.event, r.cause + 1 if r.seq == target else r.cause))
    report = replay(forged)
    assert report.divergence is not None and report.divergence.seq == target
    assert report.divergence.reason.startswith("output caused by seq")


def test_a_journal_cut_short_is_reported_where_it_ends(original: Path, tmp_path: Path) -> None:
    last_fill = seqs_of(original, OrderFilled)[5]
    cut = tmp_path / "cut.journal"
    rewritten(original, cut, lambda r: (r.event, r.cause), stop=last_fill)  # no PositionChanged after it
    report = replay(cut)
    assert report.divergence is not None and report.divergence.seq == last_fill + 1
    assert report.divergence.reason == "replay produced an event beyond the end of the journal"


@pytest.mark.parametrize("n", [0, 1, 15, 16, 65_535, 65_536])
def test_array_header_size_is_what_msgspec_writes(n: int) -> None:
    from journal.records import msgpack_array_header_size

    assert len(msgspec.msgpack.encode([None] * n)) - n == msgpack_array_header_size(n)  # None: one byte each
