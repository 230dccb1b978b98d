"""``tidemark verify --repair``: a journal whose writer died, made whole.

A writer killed before it sealed leaves its committed transactions partly
in the ``-wal`` file beside the journal; archiving the journal file alone
would lose them. Repair takes the writer lock (refused while a writer
holds it), lets SQLite recover the ``-wal`` (every committed transaction,
nothing else), checkpoints it into the journal file and leaves WAL mode, so
the journal is one file again; a run left ``running`` is marked
``crashed-recovered`` (it has no final record: a paper session can still be
resumed), or with the status of its final record if it committed one. Damage is never repaired: verify still reports it.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

from tidemark.journal.errors import JournalWriteError
from tidemark.journal.lock import WriterLock
from tidemark.journal.meta import STATUS_RECOVERED, STATUS_RUNNING
from tidemark.journal.records import UPSERT_META
from tidemark.journal.seal import consolidate


@dataclass(frozen=True)
class Repaired:
    """What repair did: ``wal_bytes`` the ``-wal`` held before, ``one_file``
    whether the journal is one file now, ``status`` its status after."""

    path: str
    wal_bytes: int
    one_file: bool
    status: str

    def describe(self) -> str:
        state = "one file" if self.one_file else "still split (a reader holds it; try again)"
        return f"repaired: {self.wal_bytes:,} bytes of -wal recovered, {state}, status {self.status}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def repair(path: str | os.PathLike[str]) -> Repaired:
    """Make the journal at ``path`` one file (see the module docstring).
    Raises :class:`JournalLockedError` while a writer holds it."""
    path = Path(path)
    wal = Path(f"{path}-wal")
    lock = WriterLock(path)
    try:
        before = wal.stat().st_size if wal.exists() else 0
        try:
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                conn.execute("PRAGMA busy_timeout=5000")
                status = _status(conn)
                if status == STATUS_RUNNING:
                    # A writer killed after it committed its final record but
                    # before it sealed: meta follows the chain, which says how the run ended.
                    status = chain_status(path) or STATUS_RECOVERED
                    conn.execute(UPSERT_META, ("status", status))
            finally:
                conn.close()
            one_file = consolidate(path)
        except sqlite3.DatabaseError as exc:  # not a journal, or damaged beyond SQLite: verify says what
            return Repaired(str(path), before, not wal.exists(), f"not repaired ({exc})")
        except sqlite3.Error as exc:
            raise JournalWriteError(f"{path}: cannot repair the journal: {exc}") from None
    finally:
        lock.release()
    return Repaired(str(path), before, one_file, status)


def _status(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = 'status'").fetchone()
    return str(row[0]) if row else ""


def chain_status(path: Path) -> str | None:
    """The status the journal's last committed record seals it with (None:
    no final record, or unreadable: verify says why)."""
    from tidemark.journal.meta import final_status
    from tidemark.journal.reader import JournalReader

    try:
        with JournalReader(path) as reader:
            return final_status(reader.final())
    except Exception:
        return None
