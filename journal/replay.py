"""Replay a journal and prove its outputs follow from its inputs.

The journal's inputs are fed, in seq order, into a freshly built actor graph
whose sink is a :class:`ReplayComparer`. Every event the graph sequences is
checked against the record with the same seq: inputs must be where the
journal has inputs, and every regenerated output must be byte-identical
(payload, cause and seq) to the recorded one. The first difference stops the
replay with a :class:`Divergence` that carries both events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from core.bus import BusFault, EventSink
from core.codec import DEFAULT_CODEC
from core.events import Event, RunFinished
from core.heap import frozen_setup
from core.series import BarBlock, MarketSeries
from journal.bar_columns import bar_inputs
from journal.reader import JournalReader
from journal.records import msgpack_array_header_size, split_block


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
    ok: bool
    events: int
    inputs: int
    outputs: int
    divergence: Divergence | None = None


_Expected = tuple[int, bool, int, Event, memoryview]


_HEADER = 5
"""Bytes of the msgpack array32 header before a block's payloads."""


def _spans(offsets: np.ndarray, records: list[int]) -> list[tuple[int, int]]:
    """Byte spans in a block's data of ``records`` (ascending indexes),
    consecutive records merged into one span."""
    at = np.array(records, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(at) != 1) + 1
    firsts = at[np.concatenate(([0], breaks))]
    ends = at[np.concatenate((breaks - 1, [len(at) - 1]))] + 1
    return list(zip((offsets[firsts] + _HEADER).tolist(), (offsets[ends] + _HEADER).tolist(), strict=True))


class DecodedBlock:
    """One stored block, shared by every replay pass. Its events are decoded
    on first use (replay from columns never needs most of them)."""

    __slots__ = ("_events", "body", "causes", "data", "first", "flags", "lengths", "offsets")

    def __init__(self, row: tuple[object, ...]) -> None:
        first, _, body, lengths, causes, flags, _ = split_block(row)
        self.first = first
        self.body = body
        self.data: bytes = row[5]  # type: ignore[assignment]  # msgpack array: a header, then the payloads
        self.lengths = lengths
        self.causes = causes
        self.flags = flags
        self._events: list[Event] | None = None
        self.offsets = np.concatenate(([0], np.cumsum(np.frombuffer(lengths, dtype=np.uint32), dtype=np.int64)))
        """Start of each payload in ``data`` after the header; one more for the end."""

    def __len__(self) -> int:
        return len(self.lengths)

    def payload(self, i: int) -> bytes:
        """The stored payload of record ``i`` of this block."""
        return self.data[int(self.offsets[i]) + _HEADER : int(self.offsets[i + 1]) + _HEADER]

    @property
    def events(self) -> list[Event]:
        if self._events is None:
            self._events = DEFAULT_CODEC.decode_array(self.data)
        return self._events


def decode_blocks(reader: JournalReader) -> list[DecodedBlock]:
    """Every block of a journal, decoded (one pass over the file)."""
    return [DecodedBlock(row) for row in reader._blocks(1, None, None, None, hashes=False)]


class ReplayComparer:
    """The replay graph's sink: compares each sequenced event with the journal.

    Sequence numbers, input/output flags and causes are checked as each event
    comes; output payloads are encoded and compared in one pass per stored
    block (:meth:`check_outputs`), and a mismatch is then located record by
    record, so the divergence reported is still the first differing seq.
    """

    def __init__(self, blocks: list[DecodedBlock]) -> None:
        self._blocks = blocks
        self._block_index = 0
        self._i = 0
        self._block: DecodedBlock | None = blocks[0] if blocks else None
        self._encode = DEFAULT_CODEC.encoder.encode
        self._outputs: list[Event] = []  # outputs of the current block not compared yet
        self._output_at: list[int] = []  # ... and their positions in it
        self.inputs = 0
        self.outputs = 0

    def _advance(self) -> None:
        block = self._block
        assert block is not None
        self._i += 1
        if self._i >= len(block):
            self.check_outputs()
            self._block_index += 1
            self._i = 0
            self._block = self._blocks[self._block_index] if self._block_index < len(self._blocks) else None

    def record(self, seq: int, event: Event, is_input: bool, cause: int) -> None:
        block = self._block
        if block is None:
            raise Divergence(seq, "replay produced an event beyond the end of the journal", None, event)
        i = self._i
        exp_seq = block.first + i
        if exp_seq != seq:
            self.check_outputs()
            raise Divergence(seq, f"sequence mismatch (journal has seq {exp_seq})", block.events[i], event)
        exp_input = block.flags[i]
        if is_input:
            if not exp_input:
                self.check_outputs()
                raise Divergence(seq, "replay fed an input where the journal has an output", block.events[i], event)
            self.inputs += 1
        else:
            if exp_input or block.causes[i] != cause:
                self.check_outputs()
                if exp_input:
                    why = "replay produced an output where the journal has an input"
                elif self._encode(event) != block.payload(i):
                    why = "output differs from the journal"
                else:
                    why = f"output caused by seq {cause}, journal says {block.causes[i]}"
                raise Divergence(seq, why, block.events[i], event)
            self._outputs.append(event)
            self._output_at.append(i)
        if i + 1 < len(block.lengths):
            self._i = i + 1
        else:
            self._advance()

    def check_outputs(self) -> None:
        """Compare the outputs of the current block recorded so far with the
        journal's bytes; raises the first :class:`Divergence`."""
        events, at = self._outputs, self._output_at
        if not events:
            return
        block = self._block
        assert block is not None
        self._outputs, self._output_at = [], []
        offsets = block.offsets
        data = block.data
        expected = b"".join([data[start:end] for start, end in _spans(offsets, at)])
        encoded = self._encode(events)  # a msgpack array: its header, then each payload
        if len(encoded) - len(expected) != msgpack_array_header_size(len(events)) or not encoded.endswith(expected):
            for i, event in zip(at, events, strict=True):
                if self._encode(event) != block.payload(i):
                    raise Divergence(block.first + i, "output differs from the journal", block.events[i], event)
        self.outputs += len(events)

    def record_inputs(self, first: int, events: Sequence[Event]) -> None:
        """Inputs ``first, first + 1, ...`` passed in one step: the journal must
        hold inputs at exactly those seqs."""
        self._inputs_at(first, len(events), events)

    def record_bars(self, first: int, block: BarBlock, start: int, stop: int) -> None:
        """A run of bar inputs read from the journal's own columns (their
        bytes were checked when they were read)."""
        self._inputs_at(first, stop - start, None)

    def _inputs_at(self, first: int, n: int, events: Sequence[Event] | None) -> None:
        block, i = self._block, self._i
        if (
            block is not None
            and block.first + i == first
            and i + n < len(block.lengths)
            and block.flags.find(0, i, i + n) < 0
        ):  # the usual case: inputs inside the current block
            self._i = i + n
            self.inputs += n
            return
        self.check_outputs()  # a divergence found below must not hide an earlier output's
        done = 0
        while done < n:
            block = self._block
            if block is None:
                fed = events[done] if events is not None else None
                raise Divergence(first + done, "replay fed an input beyond the end of the journal", None, fed)
            i = self._i
            if block.first + i != first + done:
                raise Divergence(first + done, f"sequence mismatch (journal has seq {block.first + i})", None, None)
            take = min(n - done, len(block) - i)
            output = block.flags.find(0, i, i + take)
            if output >= 0:
                raise Divergence(
                    block.first + output,
                    "replay fed an input where the journal has an output",
                    block.events[output],
                    events[done + output - i] if events is not None else None,
                )
            self.inputs += take
            done += take
            self._i = i + take - 1
            self._advance()


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
    """Feed the journal's inputs to ``build(...)``'s graph and compare."""
    blocks = decode_blocks(reader)
    columns = bar_inputs([(block.body, block.lengths, block.flags) for block in blocks])
    comparer = ReplayComparer(blocks)
    graph = build(reader, blocks, comparer, columns.market if columns is not None else None)
    last = blocks[-1].events[-1] if blocks and blocks[-1].events else None
    # A run ends with RunFinished(status); a crashed one has none and is
    # checked up to its last record, without ending it.
    status = last.status if isinstance(last, RunFinished) else None
    try:
        # Feed every input in order; the comparer checks each regenerated
        # output where it stands (outputs before an input, such as timers the
        # input makes due, come out of feeding that input).
        with frozen_setup():
            if columns is not None:
                for steps in columns.steps:
                    for step in steps:
                        if type(step) is BarBlock:
                            graph.feed_all(step)
                        else:
                            graph.feed(step)  # type: ignore[arg-type]
            else:
                for block in blocks:
                    graph.feed_all([event for event, flag in zip(block.events, block.flags, strict=True) if flag])
            if not graph.finished and status is not None:
                graph.finish(status)
        comparer.check_outputs()
        left = comparer._block
        if left is not None:
            i = comparer._i
            raise Divergence(left.first + i, "recorded output was not regenerated", left.events[i], None)
    except BusFault as fault:
        if isinstance(fault.error, Divergence):
            return _report(comparer, fault.error)
        try:
            comparer.check_outputs()  # an output before the failure may already differ
        except Divergence as divergence:
            return _report(comparer, divergence)
        if comparer._block is None:
            return _report(comparer, None)  # the recorded run failed here too, after the same events
        block = comparer._block
        seq = block.first + comparer._i
        return _report(comparer, Divergence(seq, f"replay failed: {fault.error!r}", block.events[comparer._i], None))
    except Divergence as divergence:
        return _report(comparer, divergence)
    return _report(comparer, None)


def _report(comparer: ReplayComparer, divergence: Divergence | None) -> ReplayReport:
    total = comparer.inputs + comparer.outputs
    return ReplayReport(divergence is None, total, comparer.inputs, comparer.outputs, divergence)
