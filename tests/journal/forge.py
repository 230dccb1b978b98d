"""What a forger does to a journal file with nothing but SQLite: replace a
record's payload, then recompute every chain hash from there on ("re-chain")
so the chain verifies again. Tests use it to show what the chain alone does
not prove, and what the meta checks, anchors and signatures add."""

from __future__ import annotations

import sqlite3
from array import array
from pathlib import Path

from tidemark.core.codec import DEFAULT_CODEC, EventDecodeError
from tidemark.core.events import TAGS
from tidemark.journal.records import GENESIS, chain_hashes, kind_counts, msgpack_array_header


def _split(payloads: bytes, lengths: bytes) -> list[bytes]:
    """A block's payloads, cut by its lengths column (a forged payload may not parse)."""
    sizes = array("I")
    sizes.frombytes(lengths)
    out, offset = [], 5
    for size in sizes:
        out.append(payloads[offset : offset + size])
        offset += size
    return out


def _rows(conn: sqlite3.Connection) -> list[tuple[int, int, bytes, bytes, bytes, bytes]]:
    return list(conn.execute("SELECT first_seq, n, payloads, lengths, causes, inputs FROM blocks ORDER BY first_seq"))


def set_payload(path: Path, seq: int, payload: bytes, *, rechain_after: bool = True) -> None:
    """Replace record ``seq``'s payload (lengths and header kept consistent)."""
    with sqlite3.connect(path) as conn:
        for first, n, payloads, lengths, _, _ in _rows(conn):
            if first <= seq < first + n:
                parts = _split(payloads, lengths)
                parts[seq - first] = payload
                sizes = array("I", map(len, parts)).tobytes()
                body = msgpack_array_header(n) + b"".join(parts)
                conn.execute("UPDATE blocks SET payloads=?, lengths=? WHERE first_seq=?", (body, sizes, first))
                _describe(conn, first, parts)
                break
        else:
            raise KeyError(seq)
    if rechain_after:
        rechain(path)


def rechain(path: Path) -> str:
    """Recompute every record's chain hash and the meta head; returns the head."""
    prev = GENESIS
    last = 0
    with sqlite3.connect(path) as conn:
        for first, n, payloads, lengths, causes, inputs in _rows(conn):
            cause_array = array("q")
            cause_array.frombytes(causes)
            hashes = chain_hashes(prev, first, _split(payloads, lengths), cause_array, inputs)
            prev = hashes[-1]
            last = first + n - 1
            conn.execute("UPDATE blocks SET hashes=? WHERE first_seq=?", (b"".join(hashes), first))
        conn.execute("UPDATE meta SET value=? WHERE key='head_hash'", (prev.hex(),))
        conn.execute("UPDATE meta SET value=? WHERE key='head_seq'", (str(last),))
    return prev.hex()


def set_meta(path: Path, key: str, value: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value=? WHERE key=?", (value, key))


def _describe(conn: sqlite3.Connection, first: int, parts: list[bytes]) -> None:
    """Keep the block's kind counts and time range true to its payloads, as a
    careful forger would (when they decode)."""
    try:
        events = [DEFAULT_CODEC.decode(part) for part in parts]
    except EventDecodeError:
        return
    kinds = kind_counts([TAGS[type(event)] for event in events])
    try:
        conn.execute(
            "UPDATE blocks SET kinds=?, first_ts=?, last_ts=? WHERE first_seq=?",
            (kinds, events[0].ts, events[-1].ts, first),
        )
    except OverflowError:  # a time beyond SQLite's integers: leave the range as it was
        conn.execute("UPDATE blocks SET kinds=? WHERE first_seq=?", (kinds, first))
