"""Verify a journal: SQLite integrity, seq continuity 1..N, the whole chain.

The first problem found is reported with the exact seq of the first bad
record. Checks, in order: SQLite ``integrity_check``; each block starts at the
expected seq and its columns agree in length; every payload decodes; every
record's chain hash recomputes; event times never go backwards and agree with
the block's time range and kind counts; finally the records reach the head
recorded in ``meta`` (detects a truncated tail).
"""

from __future__ import annotations

import sqlite3
from array import array
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path

from core.codec import DEFAULT_CODEC, EventDecodeError
from core.events import TAGS, Event
from journal.records import (
    BLOCK_COLUMNS,
    FORMAT_VERSION,
    GENESIS,
    HASH_SIZE,
    pack_header,
    parse_kind_counts,
    split_block,
)


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    events: int
    head: str
    first_bad_seq: int | None = None
    problem: str = ""
    status: str = ""

    @property
    def message(self) -> str:
        if self.ok:
            return f"ok: {self.events} events, head {self.head}"
        return f"first bad seq {self.first_bad_seq}: {self.problem}"

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head": self.head,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem or None,
            "status": self.status,
        }


class _Bad(Exception):
    def __init__(self, seq: int, problem: str) -> None:
        self.seq = seq
        self.problem = problem


def verify(path: str | Path, *, integrity_check: bool = True) -> VerifyReport:
    """Check one journal end to end. A damaged journal never raises: the
    report says what is wrong. A missing file raises FileNotFoundError."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such journal")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return VerifyReport(False, 0, GENESIS.hex(), 1, f"cannot open: {exc}")
    try:
        conn.execute("BEGIN")  # one snapshot of meta and blocks while a writer appends
        return _verify(conn, integrity_check)
    except sqlite3.DatabaseError as exc:
        return VerifyReport(False, 0, GENESIS.hex(), 1, f"SQLite error: {exc}")
    finally:
        conn.close()


def _verify(conn: sqlite3.Connection, integrity_check: bool) -> VerifyReport:
    meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    status = meta.get("status", "")
    if meta.get("format_version") != str(FORMAT_VERSION):
        return VerifyReport(False, 0, GENESIS.hex(), 1, "not a tidemark journal of a known format", status)
    if integrity_check:
        result = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
        if result != ["ok"]:
            return VerifyReport(False, 0, GENESIS.hex(), 1, "SQLite integrity_check: " + "; ".join(result[:3]), status)
    state = _Chain()
    try:
        for row in conn.execute(f"SELECT {BLOCK_COLUMNS} FROM blocks ORDER BY first_seq"):
            state.check_block(row)
    except _Bad as bad:
        return VerifyReport(False, bad.seq - 1, state.prev.hex(), bad.seq, bad.problem, status)
    count = state.expected - 1
    head_seq = int(meta.get("head_seq", "0") or 0)
    if count < head_seq:
        return VerifyReport(
            False, count, state.prev.hex(), count + 1, f"truncated: records end at {count}, head is {head_seq}", status
        )
    if count > head_seq:
        return VerifyReport(
            False, count, state.prev.hex(), head_seq + 1, f"records beyond the recorded head {head_seq}", status
        )
    if meta.get("head_hash", GENESIS.hex()) != state.prev.hex():
        return VerifyReport(False, count, state.prev.hex(), count, "head hash in meta disagrees with the chain", status)
    return VerifyReport(True, count, state.prev.hex(), None, "", status)


class _Chain:
    """Running verification state across blocks."""

    def __init__(self) -> None:
        self.prev = GENESIS
        self.expected = 1
        self.last_ts = -(2**63)

    def check_block(self, row: tuple[object, ...]) -> None:
        first, n, body, lengths, causes, flags, hashes = split_block(row)
        first_ts, last_ts, kinds = row[2], row[3], row[4]
        if first != self.expected:
            if first > self.expected:
                raise _Bad(self.expected, f"missing records (next stored seq is {first})")
            raise _Bad(first, f"records out of place (seq {first} after {self.expected - 1})")
        if not (len(lengths) == len(causes) == len(flags) == n and len(hashes) == n * HASH_SIZE and n > 0):
            raise _Bad(first, "block columns disagree in length")
        events = self._decode(row, first, body, lengths)
        prev = self.prev
        offset = 0
        for i in range(n):
            seq = first + i
            size = lengths[i]
            payload = body[offset : offset + size]
            offset += size
            digest = blake2b(prev + pack_header(seq, causes[i], flags[i]) + payload, digest_size=HASH_SIZE).digest()
            if digest != hashes[HASH_SIZE * i : HASH_SIZE * (i + 1)]:
                raise _Bad(seq, "hash chain broken (record altered or out of place)")
            ts = events[i].ts
            if ts < self.last_ts:
                raise _Bad(seq, f"event time goes backwards ({ts} < {self.last_ts})")
            self.last_ts = ts
            prev = digest
        if offset != len(body):
            raise _Bad(first + n - 1, "payload bytes beyond the recorded lengths")
        if events[0].ts != first_ts or events[-1].ts != last_ts:
            raise _Bad(first, "block time range disagrees with its events")
        counts: dict[str, int] = {}
        for event in events:
            tag = TAGS[type(event)]
            counts[tag] = counts.get(tag, 0) + 1
        if counts != parse_kind_counts(str(kinds)):
            raise _Bad(first, "block kind counts disagree with its events")
        self.prev = prev
        self.expected = first + n

    @staticmethod
    def _decode(row: tuple[object, ...], first: int, body: memoryview, lengths: array[int]) -> list[Event]:
        try:
            events = DEFAULT_CODEC.decode_array(row[5])  # type: ignore[arg-type]
            if len(events) == row[1]:
                return events
        except EventDecodeError:
            pass
        offset = 0
        for i, size in enumerate(lengths):
            try:
                DEFAULT_CODEC.decode(bytes(body[offset : offset + size]))
            except EventDecodeError as exc:
                raise _Bad(first + i, f"payload does not decode: {exc}") from exc
            offset += size
        raise _Bad(first, "block payload array is malformed")
