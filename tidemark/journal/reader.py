"""Reading a journal: header, counts, events by seq/kind/time range, tailing.

Readers use plain read-only ``sqlite3`` connections; in WAL mode they never
block the writer and can tail a journal while it is written.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidemark.core.codec import DEFAULT_CODEC, Codec, EventDecodeError
from tidemark.core.events import TAGS, Event, RunFailed, RunFinished, RunStarted
from tidemark.journal.errors import JournalDecodeError, JournalFormatError
from tidemark.journal.records import BLOCK_COLUMNS, GENESIS, READABLE_FORMATS, parse_kind_counts, split_block
from tidemark.journal.shared import InputRecords, find_inputs, full_row, is_reference


@dataclass(frozen=True, slots=True)
class Record:
    """One stored record with its decoded event."""

    seq: int
    event: Event
    is_input: bool
    cause: int
    payload: bytes
    hash: bytes

    @property
    def kind(self) -> str:
        return TAGS[type(self.event)]


class JournalReader:
    """Read-only view of one journal file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        codec: Codec = DEFAULT_CODEC,
        *,
        inputs: str | os.PathLike[str] | None = None,
    ) -> None:
        """``inputs``: a run journal's input journal, when it is not beside
        it (see :mod:`journal.shared`)."""
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such journal")
        self._codec = codec
        self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=5000")
        try:
            self.meta = self._read_meta()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise JournalFormatError(f"{self.path}: not a tidemark journal ({exc})") from exc
        if self.meta.get("format_version") not in READABLE_FORMATS:
            self._conn.close()
            raise JournalFormatError(f"{self.path}: not a tidemark journal of a known format")
        self._inputs: InputRecords | None = None
        if "inputs_head" in self.meta:  # a run journal whose market inputs are in an input journal
            head = self.meta["inputs_head"]
            try:
                given = Path(inputs) if inputs is not None else None
                self._inputs = InputRecords(find_inputs(self.path, head, given), head)
            except BaseException:
                self._conn.close()
                raise

    def close(self) -> None:
        self._conn.close()
        if self._inputs is not None:
            self._inputs.close()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _read_meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._conn.execute("SELECT key, value FROM meta ORDER BY key")}

    def refresh(self) -> dict[str, str]:
        self.meta = self._read_meta()
        return self.meta

    # -- summaries ---------------------------------------------------------------

    def last_seq(self) -> int:
        row = self._conn.execute("SELECT MAX(first_seq + n - 1) FROM blocks").fetchone()
        return int(row[0] or 0)

    def counts_by_kind(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for first, kinds in self._conn.execute("SELECT first_seq, kinds FROM blocks ORDER BY first_seq"):
            for kind, count in parse_kind_counts(kinds, first if type(first) is int else None).items():
                totals[kind] = totals.get(kind, 0) + count
        return dict(sorted(totals.items()))

    def head(self) -> tuple[int, str]:
        """``(last seq, its chain hash hex)`` of the stored records."""
        row = self._conn.execute("SELECT first_seq, n, hashes FROM blocks ORDER BY first_seq DESC LIMIT 1").fetchone()
        if row is None:
            return 0, GENESIS.hex()
        first, n, hashes = row
        if type(first) is not int or type(n) is not int or not isinstance(hashes, bytes) or len(hashes) < 32:
            raise JournalDecodeError(f"{self.path}: the last block is malformed", first if type(first) is int else None)
        return first + n - 1, hashes[-32:].hex()

    def header(self) -> RunStarted | None:
        """Record 1, the run header (None: no records, or seq 1 is not one)."""
        if self.last_seq() == 0:
            return None
        event = self.event(1)
        return event if isinstance(event, RunStarted) else None

    def final(self) -> RunFinished | RunFailed | None:
        """The last record if it ends the run (None: the run has no ending yet)."""
        last = self.last_seq()
        if last == 0:
            return None
        event = self.event(last)
        return event if isinstance(event, (RunFinished, RunFailed)) else None

    # -- iteration -----------------------------------------------------------------

    def _blocks(
        self, start: int, end: int | None, since: int | None, until: int | None, *, hashes: bool = True
    ) -> Iterator[tuple[Any, ...]]:
        """Block rows in seq order; ``hashes=False`` reads an empty hashes
        column (replay compares payloads; verify checks the chain)."""
        columns = BLOCK_COLUMNS if hashes else BLOCK_COLUMNS.replace("hashes", "x'' AS hashes")
        sql = [f"SELECT {columns} FROM blocks WHERE first_seq + n - 1 >= ?"]
        args: list[Any] = [start]
        if end is not None:
            sql.append("AND first_seq <= ?")
            args.append(end)
        if since is not None:
            sql.append("AND last_ts >= ?")
            args.append(since)
        if until is not None:
            sql.append("AND first_ts <= ?")
            args.append(until)
        sql.append("ORDER BY first_seq")
        cursor = self._conn.execute(" ".join(sql), args)
        inputs = self._inputs
        prev, after = GENESIS, 0  # the chain hash of record ``after`` (as far as known)
        while True:
            row = cursor.fetchone()
            if row is None:
                return
            if inputs is not None and is_reference(row):
                if hashes and after != row[0] - 1:
                    prev = self._hash_before(int(row[0]))
                row = full_row(row, inputs, prev if hashes else None)
            if hashes:
                prev, after = bytes(row[9][-32:]), int(row[0]) + int(row[1]) - 1
            yield row

    def _hash_before(self, seq: int) -> bytes:
        """The chain hash of record ``seq - 1`` (stored as the last hash of its row)."""
        found = self._conn.execute(
            "SELECT hashes FROM blocks WHERE first_seq < ? ORDER BY first_seq DESC LIMIT 1", (seq,)
        ).fetchone()
        return GENESIS if found is None else bytes(found[0][-32:])

    def batches(
        self,
        *,
        start: int = 1,
        end: int | None = None,
        kinds: Iterable[str] | None = None,
        since: int | None = None,
        until: int | None = None,
        inputs: bool | None = None,
    ) -> Iterator[tuple[list[int], list[Event]]]:
        """Decoded events in chunks, in seq order: the fastest way to read.

        ``end``/``until`` are inclusive; ``since``/``until`` filter by event
        time (ns); ``inputs`` keeps only inputs (True) or only outputs (False).
        """
        wanted = set(kinds) if kinds is not None else None
        for row in self._blocks(start, end, since, until):
            first, n = int(row[0]), int(row[1])
            try:
                events = self._codec.decode_array(row[5])
            except EventDecodeError as exc:
                raise JournalDecodeError(f"{self.path}: block at seq {first}: {exc}") from exc
            simple = (
                first >= start
                and (end is None or first + n - 1 <= end)
                and wanted is None
                and inputs is None
                and (since is None or row[2] >= since)
                and (until is None or row[3] <= until)
            )
            if simple:
                yield list(range(first, first + n)), events
                continue
            flags = row[8]
            seqs, kept = [], []
            for i, event in enumerate(events):
                seq = first + i
                if seq < start or (end is not None and seq > end):
                    continue
                if wanted is not None and TAGS[type(event)] not in wanted:
                    continue
                if since is not None and event.ts < since:
                    continue
                if until is not None and event.ts > until:
                    continue
                if inputs is not None and bool(flags[i]) != inputs:
                    continue
                seqs.append(seq)
                kept.append(event)
            if kept:
                yield seqs, kept

    def events(self, **filters: Any) -> Iterator[tuple[int, Event]]:
        """``(seq, event)`` pairs in seq order; filters as in :meth:`batches`."""
        for seqs, events in self.batches(**filters):
            yield from zip(seqs, events, strict=True)

    def records(self, *, start: int = 1, end: int | None = None) -> Iterator[Record]:
        """Full records (flags, causes, payload bytes, hashes) in seq order."""
        for row in self._blocks(start, end, None, None):
            first, n, body, lengths, causes, flags, hashes = split_block(row)
            try:
                events = self._codec.decode_array(row[5])
            except EventDecodeError as exc:
                raise JournalDecodeError(f"{self.path}: block at seq {first}: {exc}") from exc
            offset = 0
            for i in range(n):
                size = lengths[i]
                seq = first + i
                if seq >= start and (end is None or seq <= end):
                    payload = bytes(body[offset : offset + size])
                    yield Record(seq, events[i], bool(flags[i]), causes[i], payload, hashes[32 * i : 32 * i + 32])
                offset += size

    def event(self, seq: int) -> Event:
        for found, event in self.events(start=seq, end=seq):
            if found == seq:
                return event
        raise KeyError(f"{self.path}: no event with seq {seq}")

    async def tail(
        self, after: int = 0, *, poll: float = 0.05, stop: asyncio.Event | None = None
    ) -> AsyncIterator[tuple[int, Event]]:
        """Follow a journal being written: yields every event after ``after``
        in seq order, polling every ``poll`` seconds, until ``stop`` is set
        and nothing new remains."""
        last = after
        while True:
            progressed = False
            for seq, event in self.events(start=last + 1):
                last = seq
                progressed = True
                yield seq, event
            if not progressed:
                if stop is not None and stop.is_set():
                    return
                await asyncio.sleep(poll)
