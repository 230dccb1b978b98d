"""Replay a journal and prove its outputs follow from its inputs.

The journal's inputs are fed, in seq order, into a freshly built actor graph
whose sink is a :class:`ReplayComparer`. Every event the graph sequences is
checked against the record with the same seq: inputs must be where the
journal has inputs, and every regenerated output must be byte-identical
(payload, cause and seq) to the recorded one. The first difference stops the
replay with a :class:`Divergence` that carries both events.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tidemark.core.bus import BusFault, EventSink
from tidemark.core.codec import DEFAULT_CODEC, EventDecodeError
from tidemark.core.events import Event, RunFailed, RunFinished
from tidemark.core.heap import frozen_setup
from tidemark.core.series import BarBlock, MarketSeries
from tidemark.journal.bar_columns import BarInputs, bar_inputs
from tidemark.journal.blocks import HEADER, DecodedBlock, decode_blocks
from tidemark.journal.errors import JournalEmptyError, JournalError
from tidemark.journal.reader import JournalReader
from tidemark.journal.records import msgpack_array_header_size
from tidemark.journal.terminal import error_line


class Divergence(Exception):
    """Replay produced something other than the journal at ``seq``."""

    def __init__(self, seq: int, reason: str, recorded: Event | None, replayed: Event | None) -> None:
        super().__init__(f"seq {seq}: {reason}")
        self.seq = seq
        self.reason = reason
        self.recorded = recorded
        self.replayed = replayed


@dataclass(frozen=True)
class ReplayReport:
    """``events``: records matched (``inputs`` + ``outputs``); ``beyond``:
    events replay made past the end of a run that did not finish (its
    writer stopped before committing them: they prove nothing either way)."""

    ok: bool
    events: int
    inputs: int
    outputs: int
    divergence: Divergence | None = None
    beyond: int = 0


def _spans(offsets: np.ndarray, at: np.ndarray) -> list[tuple[int, int]]:
    """Byte spans in a block's data of records ``at`` (ascending indexes,
    not empty), consecutive records merged into one span."""
    breaks = np.flatnonzero(np.diff(at) != 1) + 1
    firsts = at[np.concatenate(([0], breaks))]
    ends = at[np.concatenate((breaks - 1, [len(at) - 1]))] + 1
    return list(zip((offsets[firsts] + HEADER).tolist(), (offsets[ends] + HEADER).tolist(), strict=True))


class ReplayComparer:
    """The replay graph's sink: compares what the graph sequences with the
    journal, record for record.

    Replay feeds the journal's own inputs in order, so the hot path keeps
    only the outputs (event, seq, cause) and the last seq; an input costs
    one store. Once per stored block (:meth:`check`) the output seqs are
    compared with the journal's output positions, the causes as arrays, and
    the outputs, encoded in one call, as merged byte spans in one memcmp. A
    mismatch is then located record by record, so the divergence reported
    is the first differing seq, with the reason a record-by-record check
    gives (a changed payload before a changed cause on the same record).
    """

    def __init__(self, blocks: list[DecodedBlock], *, end: int | None = None, cut: bool = False) -> None:
        """``end``: the last seq to compare (default the journal's last);
        ``cut``: the run may have stopped mid-way, so events replayed past
        ``end`` are counted in :attr:`beyond`, not a divergence."""
        self._blocks = blocks
        self._encode = DEFAULT_CODEC.encoder.encode
        self._k = 0  # index in ``blocks`` of the block holding the first unchecked record
        self._checked = blocks[0].first - 1 if blocks else 0  # every record up to this seq matched
        self.last_seq = blocks[-1].first + len(blocks[-1]) - 1 if blocks else 0
        """The journal's last seq (to compare)."""
        if end is not None:
            self.last_seq = end
        self._cut = cut
        self.beyond = 0
        self._block_end = blocks[0].first + len(blocks[0]) - 1 if blocks else 0
        self._seq = self._checked  # the last seq recorded
        self._outputs: list[Event] = []  # outputs recorded after ``_checked``
        self._seqs: list[int] = []
        self._causes: list[int] = []
        self.inputs = 0
        self.outputs = 0

    @property
    def exhausted(self) -> bool:
        """Every record of the journal was regenerated and matched."""
        return self._checked >= self.last_seq

    def record(self, seq: int, event: Event, is_input: bool, cause: int) -> None:
        if seq > self.last_seq and self._cut:
            self.beyond += 1
            return
        self._seq = seq
        if is_input:
            return
        self._outputs.append(event)
        self._seqs.append(seq)
        self._causes.append(cause)
        if seq > self._block_end:  # past the block: check it (and any passed since)
            self.check(seq - 1)

    def record_inputs(self, first: int, events: Sequence[Event]) -> None:
        """Inputs ``first, first + 1, ...`` passed in one step."""
        self._advance(first + len(events) - 1)

    def record_bars(self, first: int, block: BarBlock, start: int, stop: int) -> None:
        """A run of bar inputs (replay reads them from the journal's own
        columns, whose bytes were checked when they were read)."""
        self._advance(first + stop - start - 1)

    def _advance(self, seq: int) -> None:
        if seq > self.last_seq and self._cut:
            self.beyond += seq - max(self._seq, self.last_seq)
            seq = self.last_seq
        self._seq = seq

    def check(self, upto: int | None = None) -> None:
        """Compare the records up to seq ``upto`` (default: the last one
        recorded) with the journal; raises the first :class:`Divergence`."""
        upto = self._seq if upto is None else upto
        while self._checked < upto:
            if self._k >= len(self._blocks):
                seq = self._seqs[0] if self._seqs else self._checked + 1
                event = self._outputs[0] if self._outputs else None
                raise Divergence(seq, "replay produced an event beyond the end of the journal", None, event)
            block = self._blocks[self._k]
            last = min(upto, self._block_end)
            self._check_range(block, self._checked + 1, last)
            self._checked = last
            if last == self._block_end:
                self._k += 1
                if self._k < len(self._blocks):
                    self._block_end = self._blocks[self._k].first + len(self._blocks[self._k]) - 1

    def _check_range(self, block: DecodedBlock, first: int, last: int) -> None:
        """Records ``first..last`` of ``block`` against the outputs recorded
        with those seqs (the earliest recorded outputs)."""
        seqs = self._seqs
        m = bisect_right(seqs, last)
        start = first - block.first
        flags = np.frombuffer(block.flags, dtype=np.uint8)[start : last - block.first + 1]
        expected_at = np.flatnonzero(flags == 0) + start  # the journal's outputs, as positions in the block
        replayed_at = np.frombuffer(array("q", seqs[:m]), dtype=np.int64) - block.first
        aligned = min(len(expected_at), m)
        differ = np.flatnonzero(expected_at[:aligned] != replayed_at[:aligned])
        if len(differ):
            aligned = int(differ[0])
        outputs = self._outputs
        at = expected_at[:aligned]
        first_bad = self._first_bad_output(block, at, outputs[:aligned], self._causes[:aligned])
        if first_bad is not None:
            j, reason = first_bad
            i = int(at[j])
            self._count(start, i, j)
            raise Divergence(block.first + i, reason, block.events[i], outputs[j])
        if aligned < len(expected_at) or aligned < m:
            journal_i = int(expected_at[aligned]) if aligned < len(expected_at) else None
            replay_i = int(replayed_at[aligned]) if aligned < m else None
            if replay_i is None or (journal_i is not None and journal_i < replay_i):
                assert journal_i is not None
                # replay had an input there: the next journal input in turn
                self._count(start, journal_i, aligned)
                fed = self._nth_input(block, start, journal_i - start - aligned)
                raise Divergence(
                    block.first + journal_i,
                    "replay fed an input where the journal has an output",
                    block.events[journal_i],
                    fed,
                )
            self._count(start, replay_i, aligned)
            raise Divergence(
                block.first + replay_i,
                "replay produced an output where the journal has an input",
                block.events[replay_i],
                outputs[aligned],
            )
        self._count(start, last - block.first + 1, m)
        del self._outputs[:m], self._seqs[:m], self._causes[:m]

    def _count(self, start: int, stop: int, outputs: int) -> None:
        """Records ``start:stop`` of a block matched, ``outputs`` of them outputs."""
        self.outputs += outputs
        self.inputs += stop - start - outputs

    def _first_bad_output(
        self, block: DecodedBlock, at: np.ndarray, outputs: list[Event], causes: list[int]
    ) -> tuple[int, str] | None:
        """The first of ``outputs`` (recorded at positions ``at``) whose bytes
        or cause differ from the journal's, with the reason."""
        if not outputs:
            return None
        recorded_causes = np.frombuffer(block.causes, dtype=np.int64)[at]
        wrong_cause = np.flatnonzero(recorded_causes != np.frombuffer(array("q", causes), dtype=np.int64))
        j_cause = int(wrong_cause[0]) if len(wrong_cause) else len(outputs)
        data = memoryview(block.data)  # slices of it are not copies
        expected = b"".join([data[a:b] for a, b in _spans(block.offsets, at)])
        encoded = self._encode(outputs)  # a msgpack array: its header, then each payload
        if len(encoded) - len(expected) == msgpack_array_header_size(len(outputs)) and encoded.endswith(expected):
            j_bytes = len(outputs)
        else:
            encode = self._encode
            j_bytes = next(
                (
                    j
                    for j, (i, event) in enumerate(zip(at.tolist(), outputs, strict=True))
                    if encode(event) != block.payload(i)
                ),
                len(outputs),
            )
        if j_bytes <= j_cause and j_bytes < len(outputs):
            return j_bytes, "output differs from the journal"
        if j_cause < len(outputs):
            return j_cause, f"output caused by seq {causes[j_cause]}, journal says {int(recorded_causes[j_cause])}"
        return None

    @staticmethod
    def _nth_input(block: DecodedBlock, start: int, n: int) -> Event | None:
        """The ``n``-th input record of ``block`` from position ``start`` on."""
        for i in range(start, len(block)):
            if block.flags[i]:
                if n == 0:
                    return block.events[i]
                n -= 1
        return None

    def next_record(self) -> tuple[int, Event]:
        """Seq and event of the first record not checked yet (the journal
        must not be exhausted)."""
        block = self._blocks[self._k]
        seq = self._checked + 1
        return seq, block.events[seq - block.first]

    def finish(self) -> None:
        """The inputs are exhausted: check the rest, and that every record
        of the journal was regenerated."""
        self.check()
        if not self.exhausted:
            seq, event = self.next_record()
            raise Divergence(seq, "recorded output was not regenerated", event, None)


class ReplayGraph(Protocol):
    """What replay needs of an actor graph (``core.engine.Engine`` fits)."""

    finished: bool

    def feed(self, event: Event) -> None: ...

    def feed_all(self, events: Sequence[Event]) -> None: ...

    def finish(self, status: str = "finished") -> None: ...


ReplayBuild = Callable[[JournalReader, list[DecodedBlock], EventSink, MarketSeries | None], ReplayGraph]
"""Builds the graph from the journal, its blocks, the comparer and (when the
bars were read as columns) the run's bar series."""


def replay_check(reader: JournalReader, build: ReplayBuild) -> ReplayReport:
    """Feed the journal's inputs to ``build(...)``'s graph and compare.

    How a run ended decides how its replay ends: after ``RunFinished`` the
    graph is finished the same way; a ``RunFailed`` record is not fed: the
    replay must fail with the same error where the run's handler failed
    (``fault_seq``), and not fail where the cause was outside the run (a
    signal, the writer); a run with no final record (killed) is compared up
    to its last record. A run that did not finish may end mid-way through
    an input's outputs (its writer was stopped): replay's events past the
    end are counted, not compared."""
    blocks = decode_blocks(reader)
    if not blocks:
        raise JournalEmptyError(f"{reader.path}: the journal has no records (its run wrote nothing)")
    last = blocks[-1].event(-1)
    terminal = last if isinstance(last, RunFailed) else None
    final = 1 if terminal is not None else 0
    end = blocks[-1].first + len(blocks[-1]) - 1 - final
    comparer = ReplayComparer(blocks, end=end, cut=not isinstance(last, RunFinished))
    columns = bar_inputs(blocks)
    try:
        graph = build(reader, blocks, comparer, columns.market if columns is not None else None)
        _feed(graph, blocks, columns, last)
        comparer.finish()
    except BusFault as fault:
        if isinstance(fault.error, Divergence):
            return _report(comparer, fault.error)
        try:
            comparer.check()  # an output before the failure may already differ
        except Divergence as divergence:
            return _report(comparer, divergence)
        if comparer.exhausted and (terminal is None or terminal.fault_seq == fault.seq):
            # the recorded run failed here too, after the same events
            return _report(comparer, _same_failure(terminal, fault, end), final)
        seq, recorded = comparer.next_record() if not comparer.exhausted else (end + 1, terminal)
        return _report(comparer, Divergence(seq, f"replay failed: {fault.error!r}", recorded, None))
    except Divergence as divergence:
        return _report(comparer, divergence)
    except (EventDecodeError, JournalError):
        raise
    except Exception as error:  # outside any handler (a strategy that does not load, say)
        if terminal is not None and terminal.fault_seq == 0 and terminal.error == error_line(error):
            return _report(comparer, None, final)
        raise
    if terminal is not None and terminal.fault_seq:
        return _report(comparer, Divergence(end + 1, "the run failed here; replay did not", terminal, None))
    return _report(comparer, None, final)


def _feed(graph: ReplayGraph, blocks: list[DecodedBlock], columns: BarInputs | None, last: Event) -> None:
    """Every input in order (not a final RunFailed: the runner wrote it);
    the comparer checks each regenerated output where it stands (outputs
    before an input, such as timers the input makes due, come out of feeding
    that input). A run that finished is finished the same way."""
    with frozen_setup():
        if columns is not None:
            for steps in columns.steps:
                for step in steps:
                    if type(step) is BarBlock:
                        graph.feed_all(step)
                    elif type(step) is not RunFailed:
                        graph.feed(step)  # type: ignore[arg-type]
        else:
            for block in blocks:
                graph.feed_all(
                    [
                        event
                        for event, flag in zip(block.events, block.flags, strict=True)
                        if flag and type(event) is not RunFailed
                    ]
                )
        if not graph.finished and isinstance(last, RunFinished):
            graph.finish(last.status)


def _same_failure(terminal: RunFailed | None, fault: BusFault, end: int) -> Divergence | None:
    """None if the journal's final record names the error replay met (or
    the journal has none: a format 2 run, or a killed one)."""
    if terminal is None or terminal.error == error_line(fault):
        return None
    return Divergence(end + 1, f"replay failed differently: {error_line(fault)}", terminal, None)


def _report(comparer: ReplayComparer, divergence: Divergence | None, final: int = 0) -> ReplayReport:
    """``final``: 1 if the journal's final RunFailed record was matched (an input)."""
    inputs = comparer.inputs + (final if divergence is None else 0)
    return ReplayReport(
        divergence is None, inputs + comparer.outputs, inputs, comparer.outputs, divergence, comparer.beyond
    )
