"""Verify a journal: SQLite integrity, seq continuity 1..N, the whole chain.

The first problem found is reported with the exact seq of the first bad
record. Checks, in order: SQLite ``integrity_check``; each block starts at the
expected seq and its columns agree in length; every payload decodes; every
record's chain hash recomputes; event times never go backwards and agree with
the block's time range and kind counts; finally the records reach the head
recorded in ``meta`` (detects a truncated tail).
"""

from __future__ import annotations

import os
import sqlite3
from array import array
from collections import Counter
from dataclasses import dataclass
from hashlib import blake2b
from multiprocessing.connection import Connection
from operator import attrgetter
from pathlib import Path

import msgspec
import numpy as np

from tidemark.core.codec import DEFAULT_CODEC, EventDecodeError
from tidemark.core.events import TAGS
from tidemark.journal.child import child_context
from tidemark.journal.records import (
    BLOCK_COLUMNS,
    FORMAT_VERSION,
    GENESIS,
    HASH_SIZE,
    chain_hashes,
    pack_header,
    parse_kind_counts,
    split_block,
    split_payloads,
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


class BackgroundVerify:
    """:func:`verify` in a child process, so a caller can replay the journal
    on this core meanwhile (replay --check: verify and replay together take
    about as long as the longer of the two)."""

    def __init__(self, path: str | os.PathLike[str], *, integrity_check: bool = True, decode: bool = True) -> None:
        self._args = (str(path), integrity_check, decode)
        ctx = child_context()
        self._reply, reply_to = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=_verify_child, args=(*self._args, reply_to), daemon=True)
        self._process.start()
        reply_to.close()

    def result(self) -> VerifyReport:
        """The child's report (it may raise as :func:`verify` does); if the
        child died without one, the journal is verified here instead."""
        try:
            reply = self._reply.recv()
        except (EOFError, OSError):
            reply = None
        finally:
            self.close()
        if reply is None:
            path, integrity_check, decode = self._args
            return verify(path, integrity_check=integrity_check, decode=decode)
        if isinstance(reply, BaseException):
            raise reply
        assert isinstance(reply, VerifyReport)
        return reply

    def close(self) -> None:
        """Stop the child if it still runs (idempotent)."""
        self._reply.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def _verify_child(path: str, integrity_check: bool, decode: bool, reply_to: Connection) -> None:
    try:
        reply: VerifyReport | Exception = verify(path, integrity_check=integrity_check, decode=decode)
    except Exception as exc:  # FileNotFoundError, or a bug: the parent raises it
        reply = exc
    try:
        reply_to.send(reply)
    except Exception as exc:  # an exception that does not pickle
        reply_to.send(RuntimeError(f"{path}: verify failed: {exc!r}"))
    finally:
        reply_to.close()


class _Bad(Exception):
    def __init__(self, seq: int, problem: str) -> None:
        self.seq = seq
        self.problem = problem


def verify(path: str | os.PathLike[str], *, integrity_check: bool = True, decode: bool = True) -> VerifyReport:
    """Check one journal end to end. A damaged journal never raises: the
    report says what is wrong. A missing file raises FileNotFoundError.

    ``decode=False`` reads only each payload's tag and time instead of
    decoding it, for a caller that decodes every payload itself (replay
    --check: a payload that does not decode cannot replay identical)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such journal")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return VerifyReport(False, 0, GENESIS.hex(), 1, f"cannot open: {exc}")
    try:
        conn.execute("BEGIN")  # one snapshot of meta and blocks while a writer appends
        return _verify(conn, integrity_check, decode)
    except sqlite3.DatabaseError as exc:
        return VerifyReport(False, 0, GENESIS.hex(), 1, f"SQLite error: {exc}")
    finally:
        conn.close()


def _verify(conn: sqlite3.Connection, integrity_check: bool, decode: bool) -> VerifyReport:
    meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    status = meta.get("status", "")
    if meta.get("format_version") != str(FORMAT_VERSION):
        return VerifyReport(False, 0, GENESIS.hex(), 1, "not a tidemark journal of a known format", status)
    if integrity_check:
        result = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
        if result != ["ok"]:
            return VerifyReport(False, 0, GENESIS.hex(), 1, "SQLite integrity_check: " + "; ".join(result[:3]), status)
    state = _Chain(decode)
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


class _Head(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """An event payload's tag and time; the rest of it is skipped."""

    t: str
    ts: int


_HEADS = msgspec.msgpack.Decoder(list[_Head])
_HEAD = msgspec.msgpack.Decoder(_Head)
_KNOWN_TAGS = frozenset(TAGS.values())
_TS = attrgetter("ts")
_TAG = attrgetter("t")


class _Chain:
    """Running verification state across blocks. ``decode``: decode every
    payload as an event (else read only each payload's tag and time)."""

    def __init__(self, decode: bool) -> None:
        self.prev = GENESIS
        self.expected = 1
        self.last_ts = -(2**63)
        self.decode = decode

    def check_block(self, row: tuple[object, ...]) -> None:
        first, n, body, lengths, causes, flags, hashes = split_block(row)
        if first != self.expected:
            if first > self.expected:
                raise _Bad(self.expected, f"missing records (next stored seq is {first})")
            raise _Bad(first, f"records out of place (seq {first} after {self.expected - 1})")
        if not (len(lengths) == len(causes) == len(flags) == n and len(hashes) == n * HASH_SIZE and n > 0):
            raise _Bad(first, "block columns disagree in length")
        heads = self._heads(row)
        if heads is None or not self._block_is_sound(row, first, *heads, len(body), lengths, causes, flags, hashes):
            self._locate(row, first, body, lengths, causes, flags, hashes)  # raises
            raise AssertionError(f"block at seq {first}: the block check failed but no record did")
        self.prev = hashes[-HASH_SIZE:]
        self.expected = first + n
        self.last_ts = heads[0][-1]

    def _block_is_sound(
        self,
        row: tuple[object, ...],
        first: int,
        times: list[int],
        tags: list[str],
        body_size: int,
        lengths: array[int],
        causes: array[int],
        flags: bytes,
        hashes: bytes,
    ) -> bool:
        """Every check of the block at once (a few calls per block, no
        Python work per record but the hash); False: :meth:`_locate` finds
        the first bad record."""
        payloads = split_payloads(row[5])  # type: ignore[arg-type]  # it decoded already: this splits
        if array("I", map(len, payloads)) != lengths or sum(lengths) != body_size:
            return False
        if b"".join(chain_hashes(self.prev, first, payloads, causes, flags)) != hashes:
            return False
        if times[0] < self.last_ts or times[0] != row[2] or times[-1] != row[3]:
            return False
        ts = np.array(times, dtype=np.int64)
        if bool((ts[1:] < ts[:-1]).any()):
            return False
        return dict(Counter(tags)) == parse_kind_counts(str(row[4]))

    def _locate(
        self,
        row: tuple[object, ...],
        first: int,
        body: memoryview,
        lengths: array[int],
        causes: array[int],
        flags: bytes,
        hashes: bytes,
    ) -> None:
        """Check the block record by record, every check in seq order, and
        raise the first problem; the chain head then is the last good
        record's hash."""
        prev = self.prev
        last = self.last_ts
        offset = 0
        times: list[int] = []
        counts: dict[str, int] = {}
        for i, size in enumerate(lengths):
            seq = first + i
            payload = body[offset : offset + size]
            offset += size
            digest = blake2b(prev + pack_header(seq, causes[i], flags[i]) + payload, digest_size=HASH_SIZE).digest()
            if digest != hashes[HASH_SIZE * i : HASH_SIZE * (i + 1)]:
                self.prev = prev
                raise _Bad(seq, "hash chain broken (record altered or out of place)")
            try:
                ts, tag = self._head(bytes(payload))
            except (EventDecodeError, msgspec.MsgspecError, UnicodeDecodeError) as exc:
                self.prev = prev
                raise _Bad(seq, f"payload does not decode: {exc}") from exc
            if ts < last:
                self.prev = prev
                raise _Bad(seq, f"event time goes backwards ({ts} < {last})")
            last = ts
            times.append(ts)
            counts[tag] = counts.get(tag, 0) + 1
            prev = digest
        if offset != len(body):
            raise _Bad(first + len(lengths) - 1, "payload bytes beyond the recorded lengths")
        if self._heads(row) is None:
            raise _Bad(first, "block payload array is malformed")
        if times[0] != row[2] or times[-1] != row[3]:
            raise _Bad(first, "block time range disagrees with its events")
        if counts != parse_kind_counts(str(row[4])):
            raise _Bad(first, "block kind counts disagree with its events")

    def _heads(self, row: tuple[object, ...]) -> tuple[list[int], list[str]] | None:
        """Time and kind of every record of the block, after decoding every
        payload (or, without ``decode``, its tag and time, the tag checked
        known); None if any of that fails."""
        try:
            if self.decode:
                events = DEFAULT_CODEC.decode_array(row[5])  # type: ignore[arg-type]
                times, tags = list(map(_TS, events)), list(map(TAGS.__getitem__, map(type, events)))
            else:
                heads = _HEADS.decode(row[5])  # type: ignore[arg-type]
                times, tags = list(map(_TS, heads)), list(map(_TAG, heads))
        except (EventDecodeError, msgspec.MsgspecError, UnicodeDecodeError):
            return None
        if len(times) != row[1] or not (self.decode or _KNOWN_TAGS.issuperset(tags)):
            return None
        return times, tags

    def _head(self, payload: bytes) -> tuple[int, str]:
        """Time and kind of one payload (decoded whole with ``decode``)."""
        if self.decode:
            event = DEFAULT_CODEC.decode(payload)
            return event.ts, TAGS[type(event)]
        head = _HEAD.decode(payload)
        if head.t not in _KNOWN_TAGS:
            raise EventDecodeError(f"unknown event tag {head.t!r}")
        return head.ts, head.t
