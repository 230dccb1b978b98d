"""Stored blocks read whole and decoded on demand.

Replay, paper resume and the projections read a journal block by block
(one SQLite row per few thousand records, see :mod:`journal.records`) and
mostly need a block's columns, not its events: bar payloads are read as
numpy columns, outputs are compared as bytes. A :class:`DecodedBlock` keeps
the row's columns and decodes a record, or the whole block, only when asked.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tidemark.core.codec import DEFAULT_CODEC
from tidemark.core.events import Event
from tidemark.journal.reader import JournalReader
from tidemark.journal.records import split_block

HEADER = 5
"""Bytes of the msgpack array32 header before a block's payloads."""


class DecodedBlock:
    """One stored block. Its events are decoded on first use (replay from
    columns never needs most of them)."""

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
        return self.data[int(self.offsets[i]) + HEADER : int(self.offsets[i + 1]) + HEADER]

    def event(self, i: int) -> Event:
        """Record ``i`` decoded (alone, unless the whole block already is);
        indexes as a list does (negative from the end, IndexError past it)."""
        if self._events is not None:
            return self._events[i]
        return DEFAULT_CODEC.decode(self.payload(range(len(self.lengths))[i]))

    def events_at(self, positions: list[int]) -> list[Event]:
        """Records at ``positions`` (ascending indexes into the block),
        decoded one by one, or the whole block in one call when they are a
        good part of it (decoding one costs a few times more than in bulk)."""
        if self._events is not None or 4 * len(positions) > len(self.lengths):
            events = self.events
            return [events[i] for i in positions]
        at = np.asarray(positions, dtype=np.int64)
        data = memoryview(self.data)
        decode = DEFAULT_CODEC.decode
        starts, ends = (self.offsets[at] + HEADER).tolist(), (self.offsets[at + 1] + HEADER).tolist()
        return [decode(data[start:end]) for start, end in zip(starts, ends, strict=True)]

    @property
    def events(self) -> list[Event]:
        if self._events is None:
            self._events = DEFAULT_CODEC.decode_array(self.data)
        return self._events


def stored_blocks(reader: JournalReader) -> Iterator[DecodedBlock]:
    """Every block of a journal in seq order, one at a time (chain hashes
    not read: verify checks them)."""
    for row in reader._blocks(1, None, None, None, hashes=False):
        yield DecodedBlock(row)


def decode_blocks(reader: JournalReader) -> list[DecodedBlock]:
    """Every block of a journal (one pass over the file)."""
    return list(stored_blocks(reader))
