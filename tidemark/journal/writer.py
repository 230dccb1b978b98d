"""The journal writer: the bus's sink, SQLite through aiosqlite.

``record`` is the synchronous hot path: encode, chain-hash, buffer. Full
batches are written by :meth:`JournalWriter.pump` as one transaction each on
aiosqlite's own thread, so the simulation does not wait on disk; it waits only
at :meth:`flush` (and when more than ``max_inflight`` batches are queued).

One writer per journal: an exclusive ``flock`` on the database file is held
for the writer's lifetime; a second writer fails fast with
:class:`JournalLockedError`. Readers are never blocked (WAL).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from hashlib import blake2b
from pathlib import Path
from typing import Any, Final

import aiosqlite

from tidemark.core.codec import DEFAULT_CODEC
from tidemark.core.events import SCHEMA_VERSION, TAGS, Event, RunStarted
from tidemark.journal.errors import (
    JournalConfigError,
    JournalFormatError,
    JournalIntegrityError,
    JournalLockedError,
    SequenceError,
)
from tidemark.journal.records import (
    DDL,
    FORMAT_VERSION,
    GENESIS,
    INSERT_BLOCK,
    PAGE_SIZE,
    UPSERT_META,
    BlockRow,
    build_block,
    pack_header,
)

DURABILITY: Final = {"full": 2, "normal": 1}
"""Durability mode -> the ``PRAGMA synchronous`` value it requires."""

STATUS_RUNNING: Final = "running"
STATUS_FINISHED: Final = "finished"
STATUS_FAILED: Final = "failed"
STATUS_RECOVERED: Final = "crashed-recovered"
STATUS_QUARANTINED: Final = "quarantined"


def check_new_journal(path: str | os.PathLike[str], durability: str, overwrite: bool) -> Path:
    """Refuse an unknown durability, or an existing journal unless ``overwrite``."""
    path = Path(path)
    if durability not in DURABILITY:
        raise JournalConfigError(f"durability must be one of {sorted(DURABILITY)}, not {durability!r}")
    if path.exists() and path.stat().st_size > 0 and not overwrite:
        raise FileExistsError(f"{path}: journal already exists (use a new path or overwrite)")
    return path


class _WriterLock:
    """Exclusive advisory lock on the journal file (released by the OS on death)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise JournalLockedError(f"{path}: journal is open for writing by another writer") from None

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


class JournalWriter:
    """Append-only writer of one journal file. Use :meth:`create` or :meth:`resume`."""

    def __init__(
        self,
        path: Path,
        conn: aiosqlite.Connection,
        lock: _WriterLock,
        *,
        last_seq: int,
        last_hash: bytes,
        batch_size: int,
        max_inflight: int,
        block_size: int = 4096,
    ) -> None:
        self.path = path
        self._conn = conn
        self._lock = lock
        self._seq = last_seq
        self._prev = last_hash
        self._ts: list[int] = []
        self._kinds: list[str] = []
        self._payloads: list[bytes] = []
        self._causes: list[int] = []
        self._inputs = bytearray()
        self._hashes: list[bytes] = []
        self._batch_size = batch_size
        self._block_size = block_size
        self._max_inflight = max_inflight
        self._inflight: list[asyncio.Task[None]] = []
        self._pending_meta: dict[str, str] = {}
        self._committed_seq = last_seq
        self._encode = DEFAULT_CODEC.encode
        self._closed = False

    # -- opening ----------------------------------------------------------

    @classmethod
    async def create(
        cls,
        path: str | os.PathLike[str],
        *,
        durability: str = "normal",
        overwrite: bool = False,
        batch_size: int = 16_384,
        max_inflight: int = 4,
    ) -> JournalWriter:
        """Create a new journal at ``path``. ``durability``: ``full`` (paper,
        fsync at every commit) or ``normal`` (backtests)."""
        path = check_new_journal(path, durability, overwrite)
        if path.exists() and path.stat().st_size > 0:
            lock = _WriterLock(path)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            lock.release()
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = _WriterLock(path)
        try:
            conn = await _connect(path, durability)
            await conn.executescript(DDL)
            settings = await _read_settings(conn)
            meta = {
                "format_version": str(FORMAT_VERSION),
                "schema_version": str(SCHEMA_VERSION),
                "status": STATUS_RUNNING,
                "durability": durability,
                "head_seq": "0",
                "head_hash": GENESIS.hex(),
                **settings,
            }
            await conn.executemany(UPSERT_META, list(meta.items()))
            await conn.commit()
        except BaseException:
            lock.release()
            raise
        return cls(path, conn, lock, last_seq=0, last_hash=GENESIS, batch_size=batch_size, max_inflight=max_inflight)

    @classmethod
    async def resume(
        cls, path: str | os.PathLike[str], *, batch_size: int = 16_384, max_inflight: int = 4
    ) -> JournalWriter:
        """Reopen an existing journal for appending after its last record.

        A journal left ``running`` (its writer died) is verified and sealed
        ``crashed-recovered``; every committed record is kept and numbering
        resumes without a gap. A journal that fails verification is sealed
        ``quarantined`` and :class:`JournalIntegrityError` is raised.
        """
        from tidemark.journal.verify import verify

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such journal")
        lock = _WriterLock(path)
        try:
            report = verify(path)
            conn = await _connect_existing(path)
            meta = await _read_meta(conn)
            if not report.ok:
                await _set_meta(conn, {"status": STATUS_QUARANTINED})
                await conn.close()
                raise JournalIntegrityError(f"{path}: {report.message}; journal quarantined")
            if meta.get("status") == STATUS_RUNNING:
                await _set_meta(conn, {"status": STATUS_RECOVERED})
            durability = meta.get("durability", "normal")
            for pragma in ("PRAGMA journal_mode=WAL", f"PRAGMA synchronous={DURABILITY.get(durability, 1)}"):
                async with conn.execute(pragma) as cursor:
                    await cursor.fetchall()
            head = bytes.fromhex(report.head) if report.events else GENESIS
        except BaseException:
            lock.release()
            raise
        return cls(
            path, conn, lock, last_seq=report.events, last_hash=head, batch_size=batch_size, max_inflight=max_inflight
        )

    # -- the hot path -------------------------------------------------------

    def record(self, seq: int, event: Event, is_input: bool, cause: int) -> None:
        """Append one sequenced event to the in-memory batch (the bus's sink)."""
        if seq != self._seq + 1:
            raise SequenceError(f"{self.path}: append of seq {seq} after {self._seq}")
        payload = self._encode(event)
        flag = 1 if is_input else 0
        digest = blake2b(self._prev + pack_header(seq, cause, flag) + payload, digest_size=32).digest()
        self._ts.append(event.ts)
        self._kinds.append(TAGS[type(event)])
        self._payloads.append(payload)
        self._causes.append(cause)
        self._inputs.append(flag)
        self._hashes.append(digest)
        self._seq = seq
        self._prev = digest
        if seq == 1 and type(event) is RunStarted:
            self._pending_meta.update(header_meta(event))

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def head(self) -> bytes:
        """Chain hash of the last record appended (committed or not)."""
        return self._prev

    @property
    def committed_seq(self) -> int:
        """Highest seq known durable (its transaction committed)."""
        return self._committed_seq

    async def pump(self) -> None:
        """Write out full batches; wait only when too many are in flight."""
        if len(self._payloads) >= self._batch_size:
            self._submit()
        while len(self._inflight) > self._max_inflight:
            await self._inflight.pop(0)

    async def flush(self) -> int:
        """Commit everything recorded so far; returns the durable seq."""
        if self._payloads or self._pending_meta:
            self._submit()
        while self._inflight:
            await self._inflight.pop(0)
        return self._committed_seq

    async def close(self, status: str = STATUS_FINISHED) -> None:
        """Flush, seal with ``status`` and release the writer lock."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.flush()
            await _set_meta(self._conn, {"status": status})
            try:
                for pragma in ("PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA journal_mode=DELETE"):
                    async with self._conn.execute(pragma) as cursor:  # DELETE: a sealed journal is one file
                        await cursor.fetchall()
            except sqlite3.OperationalError:
                pass  # a reader still has it open: it stays in WAL mode, which is just as valid
        finally:
            await self._conn.close()
            self._lock.release()

    async def abort(self) -> None:
        """Stop without sealing (fail-stop): the next open recovers the run."""
        if self._closed:
            return
        self._closed = True
        for task in self._inflight:
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        await self._conn.close()
        self._lock.release()

    # -- batches --------------------------------------------------------------

    def _submit(self) -> None:
        blocks = self._take_blocks()
        meta, self._pending_meta = self._pending_meta, {}
        if blocks:
            last = blocks[-1]
            meta["head_seq"] = str(last[0] + last[1] - 1)
            meta["head_hash"] = last[9][-32:].hex()
        previous = self._inflight[-1] if self._inflight else None
        self._inflight.append(asyncio.ensure_future(self._write(blocks, meta, previous)))

    def _take_blocks(self) -> list[BlockRow]:
        n = len(self._payloads)
        if n == 0:
            return []
        first = self._seq - n + 1
        size = self._block_size
        blocks = [
            build_block(
                first + i,
                self._ts[i : i + size],
                self._kinds[i : i + size],
                self._payloads[i : i + size],
                self._causes[i : i + size],
                self._inputs[i : i + size],
                self._hashes[i : i + size],
            )
            for i in range(0, n, size)
        ]
        self._ts, self._kinds, self._payloads, self._causes, self._hashes = [], [], [], [], []
        self._inputs = bytearray()
        return blocks

    async def _write(self, blocks: list[BlockRow], meta: dict[str, str], previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.shield(previous)
        conn = self._conn
        try:
            if blocks:
                await conn.executemany(INSERT_BLOCK, blocks)
            await conn.executemany(UPSERT_META, list(meta.items()))
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise
        if blocks:
            self._committed_seq = blocks[-1][0] + blocks[-1][1] - 1

    async def __aenter__(self) -> JournalWriter:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.abort()


def header_meta(event: RunStarted) -> dict[str, str]:
    """The run header fields mirrored into the ``meta`` table for queries."""
    return {
        "run_id": event.run_id,
        "parent_run_id": event.parent_run_id,
        "config": event.config,
        "config_hash": event.config_hash,
        "fingerprints": event.fingerprints,
        "package_version": event.package_version,
        "seed": str(event.seed),
        "mode": event.mode,
        "started_ts": str(event.ts),
    }


async def _connect(path: Path, durability: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level="DEFERRED")
    await conn.execute("PRAGMA busy_timeout=5000")
    await conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file: before WAL, which fixes it
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute(f"PRAGMA synchronous={DURABILITY[durability]}")
    settings = await _read_settings(conn)
    if settings["journal_mode"] != "wal" or settings["synchronous"] != str(DURABILITY[durability]):
        await conn.close()
        raise JournalConfigError(f"{path}: SQLite gave {settings}, wanted wal/synchronous={DURABILITY[durability]}")
    return conn


async def _connect_existing(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level="DEFERRED")
    await conn.execute("PRAGMA busy_timeout=5000")
    try:
        meta = await _read_meta(conn)
    except sqlite3.DatabaseError as exc:
        await conn.close()
        raise JournalFormatError(f"{path}: not a tidemark journal ({exc})") from exc
    if meta.get("format_version") != str(FORMAT_VERSION):
        await conn.close()
        raise JournalFormatError(f"{path}: unknown journal format {meta.get('format_version')!r}")
    return conn


async def _read_settings(conn: aiosqlite.Connection) -> dict[str, str]:
    async with conn.execute("PRAGMA journal_mode") as cur:
        mode = (await cur.fetchone() or ("",))[0]
    async with conn.execute("PRAGMA synchronous") as cur:
        sync = (await cur.fetchone() or ("",))[0]
    async with conn.execute("PRAGMA busy_timeout") as cur:
        busy = (await cur.fetchone() or ("",))[0]
    return {
        "journal_mode": str(mode),
        "synchronous": str(sync),
        "busy_timeout": str(busy),
        "sqlite_version": sqlite3.sqlite_version,
    }


async def _read_meta(conn: aiosqlite.Connection) -> dict[str, str]:
    async with conn.execute("SELECT key, value FROM meta ORDER BY key") as cur:
        return {str(k): str(v) for k, v in await cur.fetchall()}


async def _set_meta(conn: aiosqlite.Connection, values: dict[str, str]) -> None:
    await conn.executemany(UPSERT_META, list(values.items()))
    await conn.commit()
