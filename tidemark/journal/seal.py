"""Sealing a journal: its final record, its status, and one file.

Synchronous SQLite, for whoever holds the writer lock at the end: the
writer process at close, the run's own process when the writer process is
gone, ``tidemark verify --repair``.

* :func:`append_final` chains the final record (unless the chain already
  ends with one of that status) and sets ``meta``'s status and head in the
  same transaction, so the status is never claimed without its record.
* :func:`consolidate` makes the journal one self-contained file: a
  ``TRUNCATE`` checkpoint moves every committed page from the ``-wal`` into
  the database file, then the file leaves WAL mode. A reader holding a read
  transaction blocks the checkpoint, and any open connection blocks leaving
  WAL; both are retried until ``wait`` runs out. A completed checkpoint
  already makes the file self-contained (the ``-wal`` left is empty).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path
from typing import Final

import msgspec

from tidemark.core.codec import DEFAULT_CODEC, EventDecodeError
from tidemark.core.events import TAGS, Event, RunFailed, RunFinished
from tidemark.journal.errors import JournalWriteError
from tidemark.journal.meta import STATUS_FINISHED, final_status
from tidemark.journal.records import GENESIS, HASH_SIZE, INSERT_BLOCK, UPSERT_META, build_block, pack_header

SEAL_WAIT: Final = 30.0
"""Seconds a seal retries a checkpoint that readers block."""
RETRY_SLEEP: Final = 0.05


@dataclass(frozen=True)
class Sealed:
    """A sealed journal: where it is, its status, last seq and chain head,
    and whether it is one self-contained file."""

    path: Path
    status: str
    events: int
    head: str
    one_file: bool


def append_final(conn: sqlite3.Connection, status: str, final: RunFailed | None = None) -> tuple[int, str]:
    """Chain the final record of ``status`` (``final``, retimed to the last
    record's time; a bare RunFailed/RunFinished if None) unless the chain
    already ends with one of that status; set ``meta``. One transaction on
    an autocommit connection. Returns ``(last seq, head hex)``; an empty
    journal gets only the status (it has no header to end)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT first_seq, n, last_ts, payloads, lengths, hashes FROM blocks ORDER BY first_seq DESC LIMIT 1"
        ).fetchone()
        if row is None:
            conn.execute(UPSERT_META, ("status", status))
            conn.execute("COMMIT")
            return 0, GENESIS.hex()
        first, n, last_ts, payloads, lengths, hashes = row
        seq, prev = first + n - 1, bytes(hashes[-HASH_SIZE:])
        size = int.from_bytes(lengths[-4:], "little")
        try:
            last: Event | None = DEFAULT_CODEC.decode(payloads[len(payloads) - size :])
        except EventDecodeError:
            last = None
        if final_status(last) != status:
            event: Event
            if status == STATUS_FINISHED:
                event = RunFinished(last_ts, status, seq + 1)
            else:
                event = msgspec.structs.replace(final or RunFailed(0, status), ts=last_ts, status=status)
            seq, prev = _append(conn, seq + 1, prev, event)
        conn.executemany(UPSERT_META, [("status", status), ("head_seq", str(seq)), ("head_hash", prev.hex())])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return seq, prev.hex()


def _append(conn: sqlite3.Connection, seq: int, prev: bytes, event: Event) -> tuple[int, bytes]:
    """One input record after ``prev``, as a block of its own."""
    payload = DEFAULT_CODEC.encode(event)
    digest = blake2b(prev + pack_header(seq, 0, 1) + payload, digest_size=HASH_SIZE).digest()
    conn.execute(
        INSERT_BLOCK, build_block(seq, [event.ts], [TAGS[type(event)]], [payload], [0], bytearray(b"\1"), [digest])
    )
    return seq, digest


def consolidate(path: str | os.PathLike[str], *, wait: float = SEAL_WAIT) -> bool:
    """Make the journal at ``path`` one self-contained file (see the module
    docstring); False if readers kept committed pages in its ``-wal`` for
    all of ``wait`` seconds. Needs the writer lock."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=0")  # retried here, counted
        tries = max(1, round(wait / RETRY_SLEEP))  # counted, not timed: no clock in the journal
        checkpointed = False
        while True:
            try:
                if not checkpointed:
                    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    checkpointed = busy == 0
                if checkpointed:
                    (mode,) = conn.execute("PRAGMA journal_mode=DELETE").fetchone()
                    if str(mode).lower() == "delete":
                        return True
            except sqlite3.OperationalError:
                pass  # locked by a reader: retry
            tries -= 1
            if tries <= 0:
                return checkpointed
            time.sleep(RETRY_SLEEP)
    finally:
        conn.close()


def seal_file(
    path: str | os.PathLike[str], status: str, final: RunFailed | None = None, *, wait: float = SEAL_WAIT
) -> Sealed:
    """Seal the journal at ``path`` from outside its writer (which is gone):
    the final record, the status, one file. Raises :class:`JournalWriteError`
    naming the cause if SQLite cannot (a full disk, say)."""
    path = Path(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            seq, head = append_final(conn, status, final)
        finally:
            conn.close()
        one_file = consolidate(path, wait=wait)
    except sqlite3.Error as exc:
        raise JournalWriteError(f"{path}: cannot seal the journal: {exc}") from None
    return Sealed(path, status, seq, head, one_file)
