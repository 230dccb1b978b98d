"""Replay names the first record whose regenerated output differs."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from tidemark.adapters.backtest import SAMPLE_DIR, replay, replay_verified, run_backtest
from tidemark.core.events import Bar, Event, OrderFilled, PositionChanged
from tidemark.journal.blocks import decode_blocks
from tidemark.journal.reader import JournalReader, Record
from tidemark.journal.records import GENESIS, chain_hashes, msgpack_array_header_size, split_block, split_payloads
from tidemark.journal.verify import verify
from tidemark.journal.writer import JournalWriter

Edit = Callable[[Record], tuple[Event, int]]


SAMPLE = SAMPLE_DIR / "SYNTH_BTC-1h.csv"


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "ema.journal"
    run_backtest("ema_cross", data=[SAMPLE], journal=path)
    return path


def rewritten(
    source: Path, target: Path, edit: Edit, *, stop: int | None = None, flip: tuple[int, ...] = (), seal: bool = True
) -> None:
    """Copy ``source`` record by record through ``edit`` (re-chained, so the
    copy verifies), up to seq ``stop``; the records at ``flip`` change from
    input to output or back (cause 0). ``seal=False`` leaves the copy as a
    killed writer would (no final record)."""

    async def write() -> None:
        writer = await JournalWriter.create(target)
        with JournalReader(source) as reader:
            for record in reader.records():
                if stop is not None and record.seq > stop:
                    break
                event, cause = edit(record)
                if record.seq in flip:
                    writer.record(record.seq, event, not record.is_input, 0)
                    continue
                writer.record(record.seq, event, record.is_input, cause)
        if seal:
            await writer.close()
        else:
            await writer.flush()
            await writer.abort()

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


def test_a_journal_cut_short_and_sealed_finished_is_reported_where_it_ends(original: Path, tmp_path: Path) -> None:
    last_fill = seqs_of(original, OrderFilled)[5]
    cut = tmp_path / "cut.journal"
    rewritten(original, cut, lambda r: (r.event, r.cause), stop=last_fill)  # no PositionChanged after it
    report = replay(cut)
    assert report.divergence is not None and report.divergence.seq == last_fill + 1
    assert report.divergence.reason == "replay produced an output where the journal has an input"  # its RunFinished


def test_a_killed_run_cut_between_an_input_and_its_outputs_replays_as_far_as_it_goes(
    original: Path, tmp_path: Path
) -> None:
    """A killed writer commits at any record: what it committed must match,
    and what replay makes after it is counted, not compared."""
    last_fill = seqs_of(original, OrderFilled)[5]
    cut = tmp_path / "cut.journal"
    rewritten(original, cut, lambda r: (r.event, r.cause), stop=last_fill, seal=False)
    report = replay(cut)
    assert report.ok and report.events == last_fill and report.beyond > 0


def unchanged(record: Record) -> tuple[Event, int]:
    return record.event, record.cause


def test_an_output_recorded_as_an_input_is_reported_at_its_seq(original: Path, tmp_path: Path) -> None:
    target = seqs_of(original, OrderFilled)[2]
    forged = tmp_path / "flag.journal"
    rewritten(original, forged, unchanged, flip=(target,))
    report = replay(forged)
    d = report.divergence
    assert d is not None and (d.seq, d.reason) == (target, "replay produced an output where the journal has an input")
    assert type(d.replayed) is OrderFilled and d.replayed == d.recorded


def test_an_input_recorded_as_an_output_is_reported_at_its_seq(original: Path, tmp_path: Path) -> None:
    bars = seqs_of(original, Bar)
    target = bars[len(bars) // 2]
    forged = tmp_path / "input.journal"
    rewritten(original, forged, unchanged, flip=(target,))
    report = replay(forged)
    d = report.divergence
    assert d is not None and (d.seq, d.reason) == (target, "replay fed an input where the journal has an output")
    # the replay fed the next recorded input in its place: the bar after it
    with JournalReader(original) as reader:
        after = next(r.event for r in reader.records() if r.seq > target and r.is_input)
    assert type(d.recorded) is Bar and d.replayed == after


def test_the_first_of_two_divergences_in_a_block_is_reported(original: Path, tmp_path: Path) -> None:
    fill = seqs_of(original, OrderFilled)[4]
    bar = next(seq for seq in seqs_of(original, Bar) if seq > fill + 3)
    forged = tmp_path / "two.journal"

    def nudge(record: Record) -> tuple[Event, int]:
        if record.seq == fill:
            event = record.event
            assert isinstance(event, OrderFilled)
            return msgspec.structs.replace(event, quantity=event.quantity * 2), record.cause
        return record.event, record.cause

    rewritten(original, forged, nudge, flip=(bar,))
    report = replay(forged)
    assert report.divergence is not None
    assert (report.divergence.seq, report.divergence.reason) == (fill, "output differs from the journal")


@pytest.mark.parametrize("n", [0, 1, 15, 16, 65_535, 65_536])
def test_array_header_size_is_what_msgspec_writes(n: int) -> None:
    assert len(msgspec.msgpack.encode([None] * n)) - n == msgpack_array_header_size(n)  # None: one byte each


def test_a_stored_block_decodes_one_record_as_the_whole_block_does(original: Path) -> None:
    with JournalReader(original) as reader:
        singles = decode_blocks(reader)
        wholes = decode_blocks(reader)
    for single, whole in zip(singles, wholes, strict=True):
        picks = (0, len(whole) // 2, len(whole) - 1, -1)
        alone = [single.event(i) for i in picks]  # decoded one by one
        assert alone == [whole.events[i] for i in picks]
        assert [whole.event(i) for i in picks] == alone  # from the decoded block
        for block in (single, whole):
            with pytest.raises(IndexError):
                block.event(len(block))


def rechain(path: Path) -> None:
    """Recompute every chain hash and the head in meta, as a forger would."""
    with sqlite3.connect(path) as conn:
        prev = GENESIS
        for row in conn.execute("SELECT * FROM blocks ORDER BY first_seq").fetchall():
            first, _, _, _, causes, flags, _ = split_block(row)
            hashes = chain_hashes(prev, first, split_payloads(row[5]), causes, flags)
            conn.execute("UPDATE blocks SET hashes = ? WHERE first_seq = ?", (b"".join(hashes), first))
            prev = hashes[-1]
        conn.execute("UPDATE meta SET value = ? WHERE key = 'head_hash'", (prev.hex(),))


def test_replay_verified_passes_an_intact_journal(original: Path) -> None:
    checked = replay_verified(original)
    assert checked.ok and checked.integrity == verify(original)
    assert checked.replay is not None and checked.replay.events == checked.integrity.events


def test_replay_verified_drops_the_replay_of_a_damaged_journal(original: Path, tmp_path: Path) -> None:
    copy = tmp_path / "damaged.journal"
    shutil.copyfile(original, copy)
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE blocks SET causes = zeroblob(length(causes)) WHERE first_seq = 1")
    checked = replay_verified(copy)
    assert not checked.ok and checked.replay is None
    assert checked.integrity == verify(copy) and checked.integrity.first_bad_seq is not None


def test_replay_verified_names_a_chained_payload_that_does_not_decode(original: Path, tmp_path: Path) -> None:
    """A bar whose open price became an 8-character string, re-chained:
    its tag and time still read, so only decoding it finds it."""
    forged = tmp_path / "forged.journal"
    shutil.copyfile(original, forged)
    bar = seqs_of(original, Bar)[10]
    with sqlite3.connect(forged) as conn:
        first, data, lengths = conn.execute(
            "SELECT first_seq, payloads, lengths FROM blocks WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1",
            (bar,),
        ).fetchone()
        sizes = memoryview(lengths).cast("I")
        start = 5 + sum(sizes[: bar - first])
        price = data.index(b"\xcb", start)  # the open: the payload's first float64
        data = data[:price] + b"\xa8" + b"12345678" + data[price + 9 :]
        conn.execute("UPDATE blocks SET payloads = ? WHERE first_seq = ?", (data, first))
    rechain(forged)
    assert verify(forged, decode=False).ok
    checked = replay_verified(forged)
    assert checked.replay is None and checked.integrity.first_bad_seq == bar
    assert "does not decode" in checked.integrity.problem
