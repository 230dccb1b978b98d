"""Replay a journal and prove its outputs follow from its inputs.

The journal's inputs are fed, in seq order, into a freshly built actor graph
whose sink is a :class:`ReplayComparer`. Every event the graph sequences is
checked against the record with the same seq: inputs must be where the
journal has inputs, and every regenerated output must be byte-identical
(payload, cause and seq) to the recorded one. The first difference stops the
replay with a :class:`Divergence` that carries both events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from core.bus import BusFault, EventSink
from core.codec import DEFAULT_CODEC
from core.events import Event
from journal.reader import JournalReader
from journal.records import split_block


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


class ReplayComparer:
    """The replay graph's sink: compares each sequenced event with the journal."""

    def __init__(self, reader: JournalReader) -> None:
        self._records = self._iterate(reader)
        self._next: _Expected | None = next(self._records, None)
        self._encode = DEFAULT_CODEC.encode
        self.inputs = 0
        self.outputs = 0

    @staticmethod
    def _iterate(reader: JournalReader) -> Iterator[_Expected]:
        decode = DEFAULT_CODEC.decode_array
        for row in reader._blocks(1, None, None, None):
            first, n, body, lengths, causes, flags, _ = split_block(row)
            events = decode(row[5])
            offset = 0
            for i in range(n):
                size = lengths[i]
                yield first + i, bool(flags[i]), causes[i], events[i], body[offset : offset + size]
                offset += size

    def peek(self) -> _Expected | None:
        return self._next

    def record(self, seq: int, event: Event, is_input: bool, cause: int) -> None:
        expected = self._next
        if expected is None:
            raise Divergence(seq, "replay produced an event beyond the end of the journal", None, event)
        exp_seq, exp_input, exp_cause, exp_event, exp_payload = expected
        if exp_seq != seq:
            raise Divergence(seq, f"sequence mismatch (journal has seq {exp_seq})", exp_event, event)
        if is_input:
            if not exp_input:
                raise Divergence(seq, "replay fed an input where the journal has an output", exp_event, event)
            self.inputs += 1
        else:
            if exp_input:
                raise Divergence(seq, "replay produced an output where the journal has an input", exp_event, event)
            if exp_payload != self._encode(event):
                raise Divergence(seq, "output differs from the journal", exp_event, event)
            if exp_cause != cause:
                raise Divergence(seq, f"output caused by seq {cause}, journal says {exp_cause}", exp_event, event)
            self.outputs += 1
        self._next = next(self._records, None)


class ReplayGraph(Protocol):
    """What replay needs of an actor graph (``core.engine.Engine`` fits)."""

    finished: bool

    def feed(self, event: Event) -> None: ...

    def finish(self, status: str = "finished") -> None: ...


def replay_check(reader: JournalReader, build: Callable[[JournalReader, EventSink], ReplayGraph]) -> ReplayReport:
    """Feed ``reader``'s inputs to ``build(reader, comparer)``'s graph and compare."""
    comparer = ReplayComparer(reader)
    graph = build(reader, comparer)
    try:
        while (expected := comparer.peek()) is not None:
            if expected[1]:
                graph.feed(expected[3])
            elif not graph.finished:
                graph.finish()
            else:
                raise Divergence(expected[0], "recorded output was not regenerated", expected[3], None)
        if not graph.finished:
            graph.finish()
    except BusFault as fault:
        if isinstance(fault.error, Divergence):
            return _report(comparer, fault.error)
        raise
    except Divergence as divergence:
        return _report(comparer, divergence)
    return _report(comparer, None)


def _report(comparer: ReplayComparer, divergence: Divergence | None) -> ReplayReport:
    total = comparer.inputs + comparer.outputs
    return ReplayReport(divergence is None, total, comparer.inputs, comparer.outputs, divergence)
