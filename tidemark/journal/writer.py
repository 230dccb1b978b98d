"""The journal writer: the bus's sink, SQLite through aiosqlite.

``record`` is the synchronous hot path: encode, chain-hash, buffer. Full
batches are written by :meth:`JournalWriter.pump` as one transaction each on
aiosqlite's own thread, so the simulation does not wait on disk; it waits only
at :meth:`flush` (and when more than ``max_inflight`` batches are queued).

One writer per journal path: the lock of :mod:`journal.lock`, beside the
file, held from before the journal exists until it is sealed; a second
writer fails fast with :class:`JournalLockedError`. Readers are never
blocked (WAL). :meth:`JournalWriter.close` seals: the final record, the
status, one self-contained file (:mod:`journal.seal`).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from dataclasses import replace
from hashlib import blake2b
from pathlib import Path
from typing import Any, Final

import aiosqlite
import numpy as np

from tidemark.core.codec import DEFAULT_CODEC
from tidemark.core.events import SCHEMA_VERSION, TAGS, Event, RunStarted
from tidemark.journal.errors import (
    JournalConfigError,
    JournalFormatError,
    JournalIntegrityError,
    JournalWriteError,
    SequenceError,
)
from tidemark.journal.lock import (
    Placement,
    WriterLock,
    place_journal,
    put_in_place,
    remove_journal_files,
    staging_path,
)
from tidemark.journal.meta import (
    STATUS_FAILED,
    STATUS_FINISHED,
    STATUS_INTERRUPTED,
    STATUS_QUARANTINED,
    STATUS_RECOVERED,
    STATUS_RUNNING,
    header_meta,
)
from tidemark.journal.records import (
    DDL,
    FORMAT_VERSION,
    GENESIS,
    INSERT_BLOCK,
    PAGE_SIZE,
    READABLE_FORMATS,
    UPSERT_META,
    BlockRow,
    build_block,
    kind_counts,
    pack_header,
)
from tidemark.journal.seal import Sealed, seal_file
from tidemark.journal.shared import SHARED_FORMAT, SHARED_KINDS, InputRecords, Stretches, head_of, market_inputs
from tidemark.journal.terminal import run_failed

__all__ = [
    "DURABILITY",
    "STATUS_FAILED",
    "STATUS_FINISHED",
    "STATUS_INTERRUPTED",
    "STATUS_QUARANTINED",
    "STATUS_RECOVERED",
    "STATUS_RUNNING",
    "JournalIntegrityError",
    "JournalWriter",
    "Sealed",
    "header_meta",
    "place_new_journal",
]

DURABILITY: Final = {"full": 2, "normal": 1}
"""Durability mode -> the ``PRAGMA synchronous`` value it requires."""


def place_new_journal(path: str | os.PathLike[str], durability: str, overwrite: bool) -> Placement:
    """Refuse an unknown durability; lock ``path`` for a new journal
    (refused if one exists, unless ``overwrite``: see :func:`place_journal`)."""
    if durability not in DURABILITY:
        raise JournalConfigError(f"durability must be one of {sorted(DURABILITY)}, not {durability!r}")
    return place_journal(path, overwrite)


class JournalWriter:
    """Append-only writer of one journal file. Use :meth:`create` or :meth:`resume`."""

    def __init__(
        self,
        placement: Placement,
        conn: aiosqlite.Connection,
        *,
        last_seq: int,
        last_hash: bytes,
        batch_size: int,
        max_inflight: int,
        block_size: int = 4096,
    ) -> None:
        self.path = placement.path
        self._placement = placement
        self._conn = conn
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
        self._staged: str | None = None
        """The durability of a new journal still at its staging path (see
        :func:`~tidemark.journal.lock.staging_path`), until its first commit."""
        self.sealed: Sealed | None = None
        self._stretches: Stretches | None = None
        """References to an input journal, if the journal was created with one."""

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
        inputs: str | os.PathLike[str] | None = None,
    ) -> JournalWriter:
        """Create a new journal at ``path``. ``durability``: ``full`` (paper,
        fsync at every commit) or ``normal`` (backtests). ``inputs``: an
        input journal (:mod:`journal.shared`) whose records this journal
        refers to rather than holds (same records, chain and head)."""
        stretches = None
        if inputs is not None:
            stretches = Stretches(InputRecords(Path(inputs), head_of(Path(inputs))))
        placement = place_new_journal(path, durability, overwrite)
        try:
            staging = staging_path(placement.write_path)
            remove_journal_files(staging)  # a creation that was killed (the path is locked: nobody else's)
            conn = await _connect(staging, durability)
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
            if stretches is not None:
                meta.update(format_version=SHARED_FORMAT, inputs_head=stretches.records.head)
            await conn.executemany(UPSERT_META, list(meta.items()))
            await conn.commit()
        except BaseException:
            placement.lock.release()
            if stretches is not None:
                stretches.close()
            raise
        writer = cls(placement, conn, last_seq=0, last_hash=GENESIS, batch_size=batch_size, max_inflight=max_inflight)
        writer._staged = durability
        writer._stretches = stretches
        return writer

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
        lock = WriterLock(path)  # first: a journal being made is not in place yet, but locked
        if not path.exists():
            lock.release()
            raise FileNotFoundError(f"{path}: no such journal")
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
        placement = Placement(path, path, lock)
        return cls(
            placement, conn, last_seq=report.events, last_hash=head, batch_size=batch_size, max_inflight=max_inflight
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

    async def close(self, status: str = STATUS_FINISHED, error: BaseException | None = None) -> Sealed:
        """Commit everything, seal with ``status`` (a run that did not finish
        ends with a chained :class:`RunFailed` naming ``error``), make the
        journal one file, put it in place and release the lock.

        If the journal cannot be written (a full disk), it is still sealed
        ``failed`` where SQLite allows, and :class:`JournalWriteError` says
        why in one line."""
        if self.sealed is not None or self._closed:
            if self.sealed is None:
                raise JournalWriteError(f"{self.path}: the writer was aborted")
            return self.sealed
        self._closed = True
        final = None if status == STATUS_FINISHED else run_failed(0, status, error)
        write_error: JournalWriteError | None = None
        try:
            await self.flush()
        except (sqlite3.Error, OSError) as exc:
            write_error = JournalWriteError(f"{self.path}: cannot write the journal: {exc}")
            status, final = STATUS_FAILED, run_failed(0, STATUS_FAILED, write_error)
        finally:
            await self._conn.close()
            self._close_inputs()
        try:
            self._closed_in_place()
            sealed = await asyncio.to_thread(seal_file, self._placement.write_path, status, final)
        except BaseException:
            self._placement.lock.release()
            raise
        self.sealed = replace(sealed, path=self._placement.finish(ok=status == STATUS_FINISHED))
        if write_error is not None:
            raise write_error
        return self.sealed

    async def abort(self) -> None:
        """Stop without sealing (fail-stop): the next open recovers the run."""
        if self._closed:
            return
        self._closed = True
        for task in self._inflight:
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        await self._conn.close()
        self._close_inputs()
        try:
            self._closed_in_place()
        finally:
            self._placement.lock.release()

    async def discard(self) -> None:
        """Stop and remove the journal (a run that failed before it started);
        a journal it would have replaced stays as it was."""
        if self._closed:
            return
        self._closed = True
        for task in self._inflight:
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        await self._conn.close()
        self._close_inputs()
        self._placement.discard()

    def _close_inputs(self) -> None:
        if self._stretches is not None:
            self._stretches.close()
            self._stretches = None

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
        if self._stretches is not None:
            return self._take_with_references(first)
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

    def _take_with_references(self, first: int) -> list[BlockRow]:
        """The batch's rows, its market inputs that are the input journal's
        next records as references to them."""
        assert self._stretches is not None
        kinds, flags = self._kinds, bytes(self._inputs)
        causes = np.array(self._causes, dtype=np.int64)
        shared_kind = np.fromiter((kind in SHARED_KINDS for kind in kinds), dtype=bool, count=len(kinds))
        market = market_inputs(flags, causes, shared_kind, first)
        rows = self._stretches.rows(
            first,
            b"".join(self._payloads),
            np.fromiter(map(len, self._payloads), dtype=np.uint32, count=len(self._payloads)),
            causes,
            flags,
            b"".join(self._hashes),
            np.array(self._ts, dtype=np.int64),
            lambda i, j: kind_counts(kinds[i:j]),
            market,
        )
        self._ts, self._kinds, self._payloads, self._causes, self._hashes = [], [], [], [], []
        self._inputs = bytearray()
        return rows

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
            if self._staged is not None:
                await self._put_in_place()

    async def _put_in_place(self) -> None:
        """Move a new journal to its path once its header is committed,
        and reopen it there (closing folds its WAL into the file)."""
        durability = self._staged
        if durability is None:
            return
        await self._conn.close()
        put_in_place(self._placement.write_path)
        self._staged = None
        self._conn = await _connect_existing(self._placement.write_path)
        async with self._conn.execute(f"PRAGMA synchronous={DURABILITY[durability]}") as cursor:
            await cursor.fetchall()

    def _closed_in_place(self) -> None:
        """After the connection is closed: a journal that never committed a
        record is put in place as it is (tables and meta, no records)."""
        if self._staged is not None:
            self._staged = None
            put_in_place(self._placement.write_path)

    async def __aenter__(self) -> JournalWriter:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.abort()


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
    if meta.get("format_version") not in READABLE_FORMATS:
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
