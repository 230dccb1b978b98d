"""Tampering: every edit, deletion, reordering or truncation is caught, and
verify names the exact first bad seq (parametrized random cases)."""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.journal.helpers import write_journal
from tidemark.journal.reader import JournalReader
from tidemark.journal.records import GENESIS, HASH_SIZE
from tidemark.journal.verify import BackgroundVerify, verify

EVENTS = 300  # bars; with their logs, the header and the RunFinished that seals it: 602 records
BLOCK = 16


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tamper") / "pristine.journal"
    asyncio.run(write_journal(path, EVENTS, block_size=BLOCK))
    report = verify(path)
    assert report.ok and report.events == 2 * EVENTS + 2
    return path


def chain_of(path: Path) -> list[bytes]:
    """The stored chain hash of every record, in seq order."""
    with JournalReader(path) as reader:
        return [record.hash for record in reader.records()]


def blocks(conn: sqlite3.Connection) -> list[tuple[int, int, bytes]]:
    return [
        (int(a), int(b), bytes(c))
        for a, b, c in conn.execute("SELECT first_seq, n, lengths FROM blocks ORDER BY first_seq")
    ]


def flip_payload(conn: sqlite3.Connection, rng: random.Random) -> int:
    first, n, lengths = rng.choice(blocks(conn))
    sizes = [int.from_bytes(lengths[4 * i : 4 * i + 4], "little") for i in range(n)]
    k = rng.randrange(n)
    offset = 5 + sum(sizes[:k]) + rng.randrange(sizes[k])
    payload = bytearray(conn.execute("SELECT payloads FROM blocks WHERE first_seq=?", (first,)).fetchone()[0])
    payload[offset] ^= 1 << rng.randrange(8)
    conn.execute("UPDATE blocks SET payloads=? WHERE first_seq=?", (bytes(payload), first))
    return first + k


def flip_hash(conn: sqlite3.Connection, rng: random.Random) -> int:
    first, n, _ = rng.choice(blocks(conn))
    k = rng.randrange(n)
    hashes = bytearray(conn.execute("SELECT hashes FROM blocks WHERE first_seq=?", (first,)).fetchone()[0])
    hashes[HASH_SIZE * k + rng.randrange(HASH_SIZE)] ^= 0xFF
    conn.execute("UPDATE blocks SET hashes=? WHERE first_seq=?", (bytes(hashes), first))
    return first + k


def flip_input_flag(conn: sqlite3.Connection, rng: random.Random) -> int:
    first, n, _ = rng.choice(blocks(conn))
    k = rng.randrange(n)
    flags = bytearray(conn.execute("SELECT inputs FROM blocks WHERE first_seq=?", (first,)).fetchone()[0])
    flags[k] ^= 1
    conn.execute("UPDATE blocks SET inputs=? WHERE first_seq=?", (bytes(flags), first))
    return first + k


def delete_row(conn: sqlite3.Connection, rng: random.Random) -> int:
    first, _, _ = rng.choice(blocks(conn))
    conn.execute("DELETE FROM blocks WHERE first_seq=?", (first,))
    return first


def swap_rows(conn: sqlite3.Connection, rng: random.Random) -> int:
    rows = blocks(conn)
    i, j = sorted(rng.sample(range(len(rows)), 2))
    a, b = rows[i][0], rows[j][0]
    conn.execute("UPDATE blocks SET first_seq=-1 WHERE first_seq=?", (a,))
    conn.execute("UPDATE blocks SET first_seq=? WHERE first_seq=?", (a, b))
    conn.execute("UPDATE blocks SET first_seq=? WHERE first_seq=-1", (b,))
    return a


def truncate_tail(conn: sqlite3.Connection, rng: random.Random) -> int:
    rows = blocks(conn)
    cut = rows[rng.randrange(1, len(rows))][0]
    conn.execute("DELETE FROM blocks WHERE first_seq>=?", (cut,))
    return cut


TAMPERS = [flip_payload, flip_hash, flip_input_flag, delete_row, swap_rows, truncate_tail]


@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "heads"])
@pytest.mark.parametrize("case", range(120))
def test_verify_names_the_first_bad_seq(pristine: Path, tmp_path: Path, case: int, decode: bool) -> None:
    rng = random.Random(case)
    tamper = TAMPERS[case % len(TAMPERS)]
    path = tmp_path / "t.journal"
    shutil.copyfile(pristine, path)
    with sqlite3.connect(path) as conn:
        expected = tamper(conn, rng)
    report = verify(path, decode=decode)
    assert not report.ok, f"{tamper.__name__} went unnoticed (case {case})"
    assert report.first_bad_seq == expected, f"{tamper.__name__}: {report.message} (wanted seq {expected})"
    # what verified: every record before it, up to its chain hash
    assert report.events == expected - 1
    assert report.head == (chain_of(pristine)[expected - 2] if expected > 1 else GENESIS).hex()


@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "heads"])
def test_an_altered_record_is_named_before_a_later_one_that_does_not_decode(
    pristine: Path, tmp_path: Path, decode: bool
) -> None:
    path = tmp_path / "t.journal"
    shutil.copyfile(pristine, path)
    first, n, lengths = blocks(sqlite3.connect(pristine))[3]
    with sqlite3.connect(path) as conn:
        hashes = bytearray(conn.execute("SELECT hashes FROM blocks WHERE first_seq=?", (first,)).fetchone()[0])
        hashes[HASH_SIZE * 2] ^= 0xFF  # the block's third record
        payloads = bytearray(conn.execute("SELECT payloads FROM blocks WHERE first_seq=?", (first,)).fetchone()[0])
        sizes = [int.from_bytes(lengths[4 * i : 4 * i + 4], "little") for i in range(n)]
        payloads[5 + sum(sizes[:5])] = 0xC1  # the sixth: a byte msgpack never uses
        conn.execute(
            "UPDATE blocks SET hashes=?, payloads=? WHERE first_seq=?", (bytes(hashes), bytes(payloads), first)
        )
    report = verify(path, decode=decode)
    assert (report.first_bad_seq, report.problem) == (first + 2, "hash chain broken (record altered or out of place)")


@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "heads"])
def test_verify_reports_an_intact_journal(pristine: Path, decode: bool) -> None:
    report = verify(pristine, decode=decode)
    assert report.ok and report.first_bad_seq is None and len(report.head) == 64
    assert report.events == 2 * EVENTS + 2


@pytest.mark.parametrize("case", [0, 1, 5])
def test_a_background_verify_reports_what_verify_does(pristine: Path, tmp_path: Path, case: int) -> None:
    path = tmp_path / "t.journal"
    shutil.copyfile(pristine, path)
    if case:
        with sqlite3.connect(path) as conn:
            TAMPERS[case % len(TAMPERS)](conn, random.Random(case))
    assert BackgroundVerify(path).result() == verify(path)


def test_a_background_verify_of_a_missing_journal_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such journal"):
        BackgroundVerify(tmp_path / "absent.journal").result()


def test_a_damaged_journal_is_quarantined_and_never_resumed(pristine: Path, tmp_path: Path) -> None:
    from tidemark.journal.errors import JournalIntegrityError
    from tidemark.journal.writer import JournalWriter

    path = tmp_path / "t.journal"
    shutil.copyfile(pristine, path)
    with sqlite3.connect(path) as conn:
        flip_payload(conn, random.Random(1))
    with pytest.raises(JournalIntegrityError, match="quarantined"):
        asyncio.run(JournalWriter.resume(path))
    with JournalReader(path) as reader:
        assert reader.meta["status"] == "quarantined"
