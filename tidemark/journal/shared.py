"""Shared input journals: a data set's market inputs stored once, and run
journals that hold only the rest of their records.

A sweep's points, a walk-forward's windows and every rerun over the same
data journal the same bars. Stored once, in an *input journal*, they are
read by each *run journal* over that data through references. Only where
the records are stored changes: a run journal has the records, the order and
the chain (so the head) of the single-file journal of the same run, and
every reader sees that journal (:class:`journal.reader.JournalReader`
rebuilds the references' records); verify checks the input journal, that it
is the one the run journal names, and the whole chain through it.

Layout:

* An input journal is an ordinary journal: record 1 a :class:`RunStarted`
  of mode ``inputs`` (the source run's data fingerprints, config ``{}``),
  then the market inputs (bars, marks, funding) in the order a run fed
  them, then :class:`RunFinished`. Its file name carries its head:
  ``inputs-<first 16 hex of the head>.journal``.
* A run journal (``format_version`` 4) names its input journal's head in
  ``meta.inputs_head``. A *reference row* in ``blocks`` stands for ``n``
  consecutive input records: ``payloads``, ``lengths`` and ``inputs``
  empty, ``causes`` one little-endian i64 (the input journal's seq of the
  first of them), ``hashes`` the chain hash of the last of them; ``first_ts``,
  ``last_ts`` and ``kinds`` as in any row.

A run journal finds its input journal beside it: in its folder, in an
``inputs`` folder there or one level up, or where :func:`use_inputs` (the
command line's ``--inputs``) says.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from tidemark.core.codec import DEFAULT_CODEC
from tidemark.core.events import RunFinished, RunStarted
from tidemark.core.ids import sha256_hex
from tidemark.journal.errors import JournalError
from tidemark.journal.lock import being_written, sync_directory
from tidemark.journal.meta import UNSEALED
from tidemark.journal.records import (
    BLOCK_COLUMNS,
    DDL,
    GENESIS,
    HASH_SIZE,
    INSERT_BLOCK,
    PAGE_SIZE,
    PAYLOAD_HEADS,
    UPSERT_META,
    BlockRow,
    chain_hashes,
    kind_counts,
    msgpack_array_header,
    split_block,
    split_payloads,
)

SHARED_KINDS: Final = frozenset({"bar", "mark", "fund"})
"""Tags of the records an input journal holds: market inputs, not the run's own."""
SHARED_FORMAT: Final = "4"
"""``format_version`` of a run journal with references (readers of 2 and 3 refuse it)."""
INPUTS_FOLDER: Final = "inputs"
INPUTS_MODE: Final = "inputs"
BLOCK: Final = 4_096
"""Records per stored row of an input journal (as the writers store them)."""


class JournalInputsError(JournalError):
    """A run journal's input journal is missing, or is not the one it names."""


def inputs_name(head: str) -> str:
    return f"inputs-{head[:16]}.journal"


def is_reference(row: tuple[Any, ...]) -> bool:
    """A stored row that stands for records of the input journal."""
    payloads = row[5]
    return isinstance(payloads, bytes) and not payloads and type(row[1]) is int and row[1] > 0


def reference_input_seq(row: tuple[Any, ...]) -> int:
    causes = row[7]
    if not isinstance(causes, bytes) or len(causes) != 8:
        raise JournalInputsError(f"reference row at seq {row[0]}: its input seq is not one 8-byte integer")
    return int.from_bytes(causes, "little", signed=True)


# -- finding an input journal ------------------------------------------------------


_GIVEN: dict[str, Path] = {}
"""Input journals named by the user (``--inputs``), by head."""


def use_inputs(*paths: str | os.PathLike[str]) -> contextlib.AbstractContextManager[None]:
    """A block in which these input journals are found by every run journal
    that names their head (the command line's ``--inputs``). Each is
    checked now: a missing file or one that is not a journal raises."""
    found = {}
    for given in paths:
        path = Path(given)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such input journal")
        found[head_of(path)] = path
    return _registered(found)


@contextlib.contextmanager
def _registered(found: dict[str, Path]) -> Iterator[None]:
    before = dict(_GIVEN)
    _GIVEN.update(found)
    try:
        yield
    finally:
        _GIVEN.clear()
        _GIVEN.update(before)


def find_inputs(journal: Path, head: str, given: Path | None = None) -> Path:
    """The input journal of head ``head`` for the run journal ``journal``:
    ``given`` if it has that head, else one named by :func:`use_inputs`,
    else one beside the journal."""
    if given is not None:
        found = head_of(given)
        if found != head:
            raise JournalInputsError(
                f"{given} is not the input journal {journal} read: its head is {found[:16]}..., not {head[:16]}..."
            )
        return given
    if head in _GIVEN:
        return _GIVEN[head]
    name = inputs_name(head)
    folder = journal.resolve().parent
    for candidate in (folder / name, folder / INPUTS_FOLDER / name, folder.parent / INPUTS_FOLDER / name):
        if candidate.is_file():
            return candidate
    raise JournalInputsError(
        f"{journal}: its input journal {name} (head {head[:16]}...) is not beside it "
        f"(nor in {INPUTS_FOLDER}/ there or one folder up); name it with --inputs"
    )


def meta_value(path: Path, key: str) -> str | None:
    """One value of a journal's ``meta`` table (None: not there; not verified)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise JournalInputsError(f"{path}: not a tidemark journal ({exc})") from None
    return None if row is None else str(row[0])


def head_of(path: Path) -> str:
    """The head a journal's meta records (not verified)."""
    head = meta_value(path, "head_hash")
    if head is None:
        raise JournalInputsError(f"{path}: not a tidemark journal (no head)")
    return head


# -- reading records of an input journal ---------------------------------------------


class InputRecords:
    """An input journal's records by seq, read a stored row at a time
    (references are read in seq order: each row is read once)."""

    def __init__(self, path: Path, head: str) -> None:
        self.path = path
        self.head = head
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        try:
            meta = dict(self._conn.execute("SELECT key, value FROM meta"))
        except sqlite3.Error as exc:
            self._conn.close()
            raise JournalInputsError(f"{path}: not a tidemark journal ({exc})") from None
        if meta.get("head_hash") != head:
            self._conn.close()
            raise JournalInputsError(
                f"{path}: its head {str(meta.get('head_hash'))[:16]}... is not {head[:16]}..., "
                "the head of the inputs the run read"
            )
        self._row: tuple[int, int, memoryview, list[int], bytes] | None = None

    def close(self) -> None:
        self._conn.close()

    def take(self, seq: int, n: int) -> tuple[bytes, bytes]:
        """Records ``seq .. seq + n - 1``: their payloads back to back and
        their lengths (little-endian u32). Hot (once per reference read):
        plain slices of the stored row's columns."""
        bodies: list[bytes] = []
        lengths: list[bytes] = []
        while n > 0:
            first, count, body, offsets, sizes = self._row_with(seq)
            i = seq - first
            k = min(n, count - i)
            bodies.append(bytes(body[offsets[i] : offsets[i + k]]))
            lengths.append(sizes[4 * i : 4 * (i + k)])
            seq += k
            n -= k
        if len(bodies) == 1:
            return bodies[0], lengths[0]
        return b"".join(bodies), b"".join(lengths)

    def _row_with(self, seq: int) -> tuple[int, int, memoryview, list[int], bytes]:
        row = self._row
        if row is None or not row[0] <= seq < row[0] + row[1]:
            found = self._conn.execute(
                f"SELECT {BLOCK_COLUMNS} FROM blocks WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1", (seq,)
            ).fetchone()
            if found is None or not found[0] + found[1] > seq:
                raise JournalInputsError(f"{self.path}: has no record {seq}")
            first, n, body, lengths, _, _, _ = split_block(found)
            offsets = np.concatenate(([0], np.cumsum(np.frombuffer(lengths, dtype="<u4"), dtype=np.int64))).tolist()
            row = self._row = (first, n, body, offsets, lengths.tobytes())
        return row


def full_row(row: tuple[Any, ...], records: InputRecords, prev: bytes | None) -> BlockRow:
    """The stored row a reference row stands for. ``prev``: the chain hash
    before it, to recompute each record's hash (None: only the last one,
    as stored, is given)."""
    first, n, first_ts, last_ts, kinds = row[0], row[1], row[2], row[3], row[4]
    body, lengths = records.take(reference_input_seq(row), n)
    causes = bytes(8 * n)
    flags = b"\1" * n
    data = msgpack_array_header(n) + body
    if prev is None:
        hashes = bytes(row[9])
    else:
        hashes = b"".join(chain_hashes(prev, first, split_payloads(data), _zeros(n), flags))
    return (first, n, first_ts, last_ts, kinds, data, lengths, causes, flags, hashes)


def _zeros(n: int) -> array[int]:
    return array("q", bytes(8 * n))


# -- making input journals and run journals with references --------------------------------


@dataclass(frozen=True)
class Shared:
    """What :func:`share_inputs` did: ``records`` of the run journal's
    ``total`` now read from the input journal; its size before and after."""

    journal: Path
    inputs: Path
    records: int
    total: int
    bytes_before: int
    bytes_after: int


def _rows(path: Path) -> Iterator[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        yield from conn.execute(f"SELECT {BLOCK_COLUMNS} FROM blocks ORDER BY first_seq")
    finally:
        conn.close()


def _meta(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta ORDER BY key")}
    finally:
        conn.close()


def _sealed_single_file(path: Path) -> dict[str, str]:
    """The meta of a sealed journal that holds all its records. (Its chain
    is checked where it matters: the rewritten journal must verify to this
    head, and an input journal's records are chained anew.)"""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such journal")
    if being_written(path):
        raise JournalError(f"{path}: is being written; share its inputs once it is sealed")
    try:
        meta = _meta(path)
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: not a tidemark journal ({exc})") from None
    if meta.get("format_version") == SHARED_FORMAT:
        raise JournalError(f"{path}: already reads its inputs from an input journal")
    if meta.get("status", "") in UNSEALED or meta.get("head_seq", "0") == "0":
        raise JournalError(f"{path}: only a sealed journal can share its inputs (status {meta.get('status')!r})")
    return meta


def market_inputs(flags: bytes, causes: np.ndarray, shared_kind: np.ndarray, first: int) -> np.ndarray:
    """Which of the records ``first ..`` an input journal may hold: inputs
    (flag 1, no cause) of a market kind (``shared_kind``, per record), not
    the run header (record 1)."""
    market = (np.frombuffer(flags, dtype=np.uint8) == 1) & (causes == 0) & shared_kind
    if first == 1:
        market[0] = False
    return market


def _row_heads(row: tuple[Any, ...]) -> tuple[list[str], list[int], np.ndarray]:
    """A stored row's tags and times, and which of its records are market inputs."""
    heads = PAYLOAD_HEADS.decode(row[5])
    tags = [head.t for head in heads]
    kinds = np.fromiter((tag in SHARED_KINDS for tag in tags), dtype=bool, count=len(tags))
    market = market_inputs(row[8], np.frombuffer(row[7], dtype=np.int64), kinds, row[0])
    return tags, [head.ts for head in heads], market


def extract_inputs(journal: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """Write the input journal of the sealed journal ``journal`` (its market
    inputs) into ``folder`` as ``inputs-<head>.journal``, unless one with
    that content is there already; returns its path."""
    source = Path(journal)
    meta = _sealed_single_file(source)
    header = RunStarted(
        int(meta.get("started_ts", "0")),
        run_id="inputs-" + sha256_hex(meta.get("fingerprints", "{}"))[:16],
        config="{}",
        config_hash=sha256_hex("{}"),
        fingerprints=meta.get("fingerprints", "{}"),
        package_version=meta.get("package_version", ""),
        mode=INPUTS_MODE,
    )
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".inputs-{os.getpid()}.journal.creating"
    _remove(staging)
    conn = _new_file(staging)
    try:
        seq, prev = 0, GENESIS
        pending: list[tuple[int, str, bytes]] = [(header.ts, "start", DEFAULT_CODEC.encode(header))]
        last_ts = header.ts
        conn.execute("BEGIN")
        for row in _rows(source):
            _, _, body, lengths, _, _, _ = split_block(row)  # checks the columns _row_heads reads
            tags, stamps, shared = _row_heads(row)
            if not shared.any():
                continue
            offset = 0
            for i, size in enumerate(lengths):
                if shared[i]:
                    pending.append((stamps[i], tags[i], bytes(body[offset : offset + size])))
                    last_ts = stamps[i]
                offset += size
            while len(pending) >= BLOCK:
                seq, prev = _store(conn, seq, prev, pending[:BLOCK])
                del pending[:BLOCK]
        pending.append(
            (last_ts, "finish", DEFAULT_CODEC.encode(RunFinished(last_ts, "finished", seq + len(pending) + 1)))
        )
        seq, prev = _store(conn, seq, prev, pending)
        values = {
            **meta,
            "run_id": header.run_id,
            "parent_run_id": header.parent_run_id,
            "config": header.config,
            "config_hash": header.config_hash,
            "fingerprints": header.fingerprints,
            "seed": str(header.seed),
            "mode": header.mode,
            "started_ts": str(header.ts),
            "status": "finished",
            "head_seq": str(seq),
            "head_hash": prev.hex(),
            "journal_mode": "delete",
        }
        conn.executemany(UPSERT_META, sorted(values.items()))
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        _remove(staging)
        raise
    conn.close()
    target = out / inputs_name(prev.hex())
    if target.exists() and head_of(target) == prev.hex():
        _remove(staging)  # the same inputs, journaled before
    else:
        os.replace(staging, target)
        sync_directory(out)
    return target


def share_inputs(journal: str | os.PathLike[str], inputs: str | os.PathLike[str], *, check: bool = True) -> Shared:
    """Rewrite the sealed journal ``journal`` so that each stretch of its
    records that the input journal ``inputs`` holds, in the same order, is a
    reference to them; the records, the chain and the head stay the same.
    Each stretch is compared byte for byte with the input journal's records
    before it becomes a reference; with ``check`` the rewritten journal must
    also verify to the same head before it replaces the original (a sweep
    skips that: ``verify_sweep`` verifies every point)."""
    from tidemark.journal.verify import verify

    source, inputs_path = Path(journal), Path(inputs)
    meta = _sealed_single_file(source)
    inputs_head = head_of(inputs_path)
    stretches = Stretches(InputRecords(inputs_path, inputs_head))
    staging = source.with_name(source.name + ".sharing")
    _remove(staging)
    conn = _new_file(staging)
    try:
        conn.execute("BEGIN")
        for row in _rows(source):
            first, _, body, lengths, causes, flags, hashes = split_block(row)
            tags, stamps, market = _row_heads(row)
            stored = stretches.rows(
                first,
                body,
                np.frombuffer(lengths, dtype="<u4"),
                np.frombuffer(causes, dtype=np.int64),
                flags,
                hashes,
                np.array(stamps, dtype=np.int64),
                lambda i, j, tags=tags: kind_counts(tags[i:j]),
                market,
            )
            conn.executemany(INSERT_BLOCK, stored)
        conn.executemany(
            UPSERT_META,
            sorted(
                {**meta, "format_version": SHARED_FORMAT, "inputs_head": inputs_head, "journal_mode": "delete"}.items()
            ),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        stretches.close()
        _remove(staging)
        raise
    conn.close()
    stretches.close()
    if check:
        report = verify(staging, integrity_check=False, decode=False, inputs=inputs_path)  # every record as it was
        if not report.ok or report.head != meta.get("head_hash"):
            _remove(staging)
            raise JournalError(f"{source}: with shared inputs it does not verify to its head ({report.message})")
    before = source.stat().st_size
    os.replace(staging, source)
    sync_directory(source.parent)
    return Shared(source, inputs_path, stretches.shared, int(meta.get("head_seq", "0")), before, source.stat().st_size)


class Stretches:
    """Turns consecutive records into stored rows: each stretch of market
    inputs that are the input journal's next records (compared byte for
    byte) into one reference row, everything else into ordinary rows of at
    most ``chunk`` records. Used on a sealed journal (:func:`share_inputs`)
    and by the writer process as it writes (then nothing is written twice)."""

    def __init__(self, records: InputRecords, chunk: int = BLOCK) -> None:
        self.records = records
        self.next = 2  # the input journal's record 1 is its header
        self.shared = 0
        self.chunk = chunk

    def close(self) -> None:
        self.records.close()

    def rows(
        self,
        first: int,
        body: memoryview | bytes,
        lengths: np.ndarray,
        causes: np.ndarray,
        flags: bytes,
        hashes: bytes,
        stamps: np.ndarray,
        kinds: Any,
        market: np.ndarray,
    ) -> list[BlockRow]:
        """Rows for records ``first ..`` (their payloads back to back in
        ``body``, ``lengths`` u32, ``causes`` i64, ``flags``, ``hashes``,
        ``stamps``; ``kinds(i, j)`` the kind counts of records ``i .. j-1``;
        ``market``: the records that may be the input journal's)."""
        n = len(lengths)
        offsets = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
        edges = (np.flatnonzero(np.diff(market.astype(np.int8))) + 1).tolist()
        out: list[BlockRow] = []

        def own(i: int, j: int) -> None:
            for a in range(i, j, self.chunk):
                b = min(a + self.chunk, j)
                out.append(
                    (
                        first + a,
                        b - a,
                        int(stamps[a]),
                        int(stamps[b - 1]),
                        kinds(a, b),
                        msgpack_array_header(b - a) + bytes(body[int(offsets[a]) : int(offsets[b])]),
                        lengths[a:b].astype("<u4").tobytes(),
                        causes[a:b].astype("<i8").tobytes(),
                        bytes(flags[a:b]),
                        bytes(hashes[HASH_SIZE * a : HASH_SIZE * b]),
                    )
                )

        for i, j in zip([0, *edges], [*edges, n], strict=True):
            if i < j and market[i]:
                k = _matching(self.records, self.next, body, offsets, i, j)
                if k > i:
                    out.append(
                        (
                            first + i,
                            k - i,
                            int(stamps[i]),
                            int(stamps[k - 1]),
                            kinds(i, k),
                            b"",
                            b"",
                            self.next.to_bytes(8, "little", signed=True),
                            b"",
                            bytes(hashes[HASH_SIZE * (k - 1) : HASH_SIZE * k]),
                        )
                    )
                    self.shared += k - i
                    self.next += k - i
                    i = k
            if i < j:
                own(i, j)  # not market inputs, or not the input journal's next ones: kept as they are
        return out


def _matching(records: InputRecords, seq: int, body: memoryview | bytes, offsets: np.ndarray, i: int, j: int) -> int:
    """The end of the longest run of records ``i ..`` (before ``j``) equal to
    the input journal's records from ``seq`` on."""
    try:
        theirs, their_lengths = records.take(seq, j - i)
    except JournalInputsError:
        return i  # the input journal has fewer records left
    ours = bytes(body[int(offsets[i]) : int(offsets[j])])
    if ours == theirs:
        return j
    mine = np.diff(offsets[i : j + 1])
    other = np.frombuffer(their_lengths, dtype="<u4").astype(np.int64)
    k = 0
    at = 0
    while k < j - i and mine[k] == other[k] and ours[at : at + mine[k]] == theirs[at : at + mine[k]]:
        at += int(mine[k])
        k += 1
    return i + k


def _store(conn: sqlite3.Connection, seq: int, prev: bytes, records: list[tuple[int, str, bytes]]) -> tuple[int, bytes]:
    """Chain ``records`` (time, tag, payload) as inputs after ``seq``; one row."""
    n = len(records)
    payloads = [payload for _, _, payload in records]
    flags = b"\1" * n
    hashes = chain_hashes(prev, seq + 1, payloads, _zeros(n), flags)
    conn.execute(
        INSERT_BLOCK,
        (
            seq + 1,
            n,
            records[0][0],
            records[-1][0],
            kind_counts([tag for _, tag, _ in records]),
            msgpack_array_header(n) + b"".join(payloads),
            array("I", map(len, payloads)).tobytes(),
            bytes(8 * n),
            flags,
            b"".join(hashes),
        ),
    )
    return seq + n, hashes[-1]


def _new_file(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=DELETE")
    for statement in DDL.split(";"):
        if statement.strip():
            conn.execute(statement)
    return conn


def _remove(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
