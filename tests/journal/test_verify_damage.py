"""verify names each kind of damage at its exact seq, and its report's
``events`` and ``head`` are the records before that seq and the chain hash
of the last of them (issue 25). The journal: a header, 20 bars each with a
log, and the RunFinished that seals it: 42 records in blocks of 8 (1-8,
9-16, 17-24, 25-32, 33-40, 41-42)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from tests.journal.forge import rechain, set_meta, set_payload
from tests.journal.helpers import write_journal
from tidemark.journal.reader import JournalReader
from tidemark.journal.records import GENESIS
from tidemark.journal.verify import Expectations, VerifyReport, verify

RECORDS = 42


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("damage") / "pristine.journal"
    asyncio.run(write_journal(path, 20, block_size=8))
    report = verify(path)
    assert report.ok and report.events == RECORDS
    return path


@pytest.fixture(scope="module")
def chain(pristine: Path) -> list[str]:
    with JournalReader(pristine) as reader:
        return [record.hash.hex() for record in reader.records()]


@pytest.fixture
def journal(pristine: Path, tmp_path: Path) -> Path:
    path = tmp_path / "j.journal"
    shutil.copyfile(pristine, path)
    return path


def sql(path: Path, statement: str, *args: object) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(statement, args)


def blob(path: Path, column: str, first: int) -> bytes:
    with sqlite3.connect(path) as conn:
        return bytes(conn.execute(f"SELECT {column} FROM blocks WHERE first_seq=?", (first,)).fetchone()[0])


def log_payload(ts: int) -> bytes:
    return msgspec.msgpack.encode(["log", ts, "t", "info", "x"])


def grow_payloads(path: Path) -> None:
    sql(path, "UPDATE blocks SET payloads=? WHERE first_seq=17", blob(path, "payloads", 17) + b"\xc0")


def miscount_array(path: Path) -> None:
    body = bytearray(blob(path, "payloads", 17))
    body[4] = 9  # the array header says 9 payloads; lengths say 8
    sql(path, "UPDATE blocks SET payloads=? WHERE first_seq=17", bytes(body))


def overlap(path: Path) -> None:
    sql(path, "UPDATE blocks SET first_seq=12 WHERE first_seq=17")


DAMAGE: dict[str, tuple[Callable[[Path], None], int, str]] = {
    "altered payload": (lambda p: set_payload(p, 12, log_payload(1_005), rechain_after=False), 12, "hash chain broken"),
    "re-chained payload that does not decode": (lambda p: set_payload(p, 20, b"\xc1"), 20, "does not decode"),
    "re-chained time going backwards": (lambda p: set_payload(p, 13, log_payload(5)), 13, "goes backwards (5 < 1005)"),
    "re-chained time going backwards within its block": (
        lambda p: set_payload(p, 13, log_payload(1_004)),
        13,
        "goes backwards (1004 < 1005)",
    ),
    "block time range": (
        lambda p: sql(p, "UPDATE blocks SET first_ts=first_ts-1 WHERE first_seq=17"),
        17,
        "time range",
    ),
    "block kind counts": (
        lambda p: sql(p, "UPDATE blocks SET kinds='bar=5,log=3' WHERE first_seq=17"),
        17,
        "kind counts",
    ),
    "missing block": (
        lambda p: sql(p, "DELETE FROM blocks WHERE first_seq=17"),
        17,
        "missing records (next stored seq is 25)",
    ),
    "overlapping block": (overlap, 17, "records out of place (seq 12 after 16)"),
    "columns of different lengths": (
        lambda p: sql(p, "UPDATE blocks SET inputs=x'00' WHERE first_seq=17"),
        17,
        "disagree in length",
    ),
    "bytes beyond the lengths": (grow_payloads, 24, "payload bytes beyond the recorded lengths"),
    "payload array miscounted": (miscount_array, 17, "payload array is malformed"),
    "truncated tail": (
        lambda p: sql(p, "DELETE FROM blocks WHERE first_seq>=41"),
        41,
        "truncated: records end at 40, head is 42",
    ),
    "head_seq not a number": (lambda p: set_meta(p, "head_seq", "x"), 43, "head_seq in meta is not a seq: 'x'"),
    "records beyond the head": (lambda p: set_meta(p, "head_seq", "40"), 41, "records beyond the recorded head 40"),
}


@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "heads"])
@pytest.mark.parametrize("name", list(DAMAGE))
def test_each_damage_is_named_at_its_seq_with_the_head_before_it(
    journal: Path, chain: list[str], name: str, decode: bool
) -> None:
    damage, seq, problem = DAMAGE[name]
    damage(journal)
    report = verify(journal, decode=decode)
    assert not report.ok
    assert report.first_bad_seq == seq, report.message
    assert problem in report.problem, report.problem
    assert report.events == seq - 1
    assert report.head == (chain[seq - 2] if seq > 1 else GENESIS.hex())
    assert report.message == f"first bad seq {seq}: {report.problem}"
    assert report.status == "finished" and report.sealed and not report.live


def test_head_hash_in_meta_is_checked(journal: Path, chain: list[str]) -> None:
    set_meta(journal, "head_hash", chain[-2])
    report = verify(journal)
    assert (report.ok, report.first_bad_seq, report.events) == (False, RECORDS, RECORDS)
    assert report.problem == "head hash in meta disagrees with the chain"
    assert report.head == chain[-1]


def test_a_meta_field_that_disagrees_with_the_chain_has_no_seq(journal: Path) -> None:
    set_meta(journal, "status", "running")
    report = verify(journal)
    assert not report.ok and report.first_bad_seq is None and report.events == RECORDS
    assert report.message == report.problem and report.problem


def test_a_damaged_header_is_seq_1_with_the_genesis_head(journal: Path) -> None:
    # Record 1 keeps a valid tag and time (a heads-only verify reads just those) but is no RunStarted.
    set_payload(journal, 1, msgspec.msgpack.encode(["run", 0]))
    for decode in (True, False):
        report = verify(journal, decode=decode)
        assert (report.ok, report.first_bad_seq, report.events, report.head) == (False, 1, 0, GENESIS.hex())
        assert "does not decode" in report.problem


def test_a_damaged_last_record_is_named_with_the_head_before_it(journal: Path, chain: list[str]) -> None:
    set_payload(journal, RECORDS, msgspec.msgpack.encode(["fin", 10_000]))
    rechain(journal)
    report = verify(journal, decode=False)
    assert (report.ok, report.first_bad_seq, report.events) == (False, RECORDS, RECORDS - 1)
    assert report.head == chain[RECORDS - 2]


def test_an_intact_journal(pristine: Path, chain: list[str]) -> None:
    report = verify(pristine)
    assert report == VerifyReport(True, RECORDS, chain[-1], None, "", "finished", False, None, 0, None)
    assert report.message == f"ok: {RECORDS} events, head {chain[-1]}"
    assert report.as_dict()["problem"] is None and report.as_dict()["sealed"] is True


def test_anchors(journal: Path, chain: list[str]) -> None:
    found = verify(journal, expect=Expectations(expect_head=chain[9]))
    assert found.ok and found.anchor_seq == 10
    last = verify(journal, expect=Expectations(expect_head=f" {chain[-1]}\n"))
    assert last.ok and last.anchor_seq == RECORDS
    missing = verify(journal, expect=Expectations(expect_head="ab" * 32))
    assert not missing.ok and missing.first_bad_seq is None
    assert missing.problem == f"the chain does not pass through the expected head {'ab' * 32}"
    for bad in ("xyz", "ab" * 31):
        report = verify(journal, expect=Expectations(expect_head=bad))
        assert not report.ok and report.events == 0 and "is not a chain hash" in report.problem


def test_an_anchor_at_an_offset_that_is_not_a_record_boundary_is_not_found(journal: Path, chain: list[str]) -> None:
    # Half of one hash and half of the next, glued: it occurs in the hashes column, but not at a record.
    straddle = chain[3][32:] + chain[4][:32]
    report = verify(journal, expect=Expectations(expect_head=straddle))
    assert not report.ok and report.anchor_seq is None


def test_not_a_journal_and_unknown_format(tmp_path: Path, journal: Path) -> None:
    with pytest.raises(FileNotFoundError):
        verify(tmp_path / "absent.journal")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    report = verify(other)
    assert (report.ok, report.first_bad_seq, report.events) == (False, 1, 0)
    assert report.problem.startswith("not a tidemark journal (")
    set_meta(journal, "format_version", "99")
    report = verify(journal)
    assert report.problem == "not a tidemark journal of a known format (format_version '99')"
    assert report.first_bad_seq == 1 and report.status == "finished"


def test_integrity_check_can_be_skipped(journal: Path) -> None:
    assert verify(journal, integrity_check=False).ok


def test_error_reports_have_no_records_and_are_not_live(tmp_path: Path, journal: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    set_meta(journal, "format_version", "1")
    for report in (verify(other), verify(journal)):
        assert (report.events, report.head, report.live, report.checkpoints) == (0, GENESIS.hex(), False, 0)
        assert report.anchor_seq is None and report.signed_through is None


def test_a_record_that_does_not_decode_is_found_by_default(journal: Path) -> None:
    # A valid tag and time but not a Log: only a decoding verify (the default) sees it.
    set_payload(journal, 21, msgspec.msgpack.encode(["log", 1_009]))
    assert verify(journal, decode=False).ok
    report = verify(journal)
    assert (report.ok, report.first_bad_seq) == (False, 21)


def test_times_up_to_the_largest_signed_64_bit_value(journal: Path) -> None:
    set_payload(journal, 40, log_payload(2**63 - 1))  # the largest time: fine (then the final record goes back)
    report = verify(journal)
    assert report.first_bad_seq == 41 and "goes backwards" in report.problem
    set_payload(journal, 40, log_payload(2**63))
    for decode in (True, False):
        report = verify(journal, decode=decode)
        assert report.first_bad_seq == 40 and "out of range" in report.problem, report.problem


def test_the_largest_time_inside_a_block_is_in_range(journal: Path) -> None:
    set_payload(journal, 39, log_payload(2**63 - 1))  # in range; record 40, in the same block, then goes back
    for decode in (True, False):
        report = verify(journal, decode=decode)
        assert report.first_bad_seq == 40 and "goes backwards" in report.problem, report.problem


@pytest.mark.parametrize(("head_seq", "events"), [(1, 1), (0, 0)])
def test_records_beyond_a_head_at_the_start(journal: Path, chain: list[str], head_seq: int, events: int) -> None:
    set_meta(journal, "head_seq", str(head_seq))
    report = verify(journal)
    assert (report.first_bad_seq, report.events) == (head_seq + 1, events)
    assert report.head == (chain[0] if head_seq else GENESIS.hex())


def test_a_journal_without_records(journal: Path) -> None:
    sql(journal, "DELETE FROM blocks")
    set_meta(journal, "head_seq", "0")
    set_meta(journal, "head_hash", GENESIS.hex())
    report = verify(journal)
    assert (report.ok, report.events, report.first_bad_seq) == (False, 0, None)
    assert report.problem == "meta describes a run but the journal has no records"


def test_a_damaged_last_record_in_a_block_of_several(journal: Path, chain: list[str]) -> None:
    sql(journal, "DELETE FROM blocks WHERE first_seq >= 41")
    set_payload(journal, 40, msgspec.msgpack.encode(["bar", 1_019]))  # re-chains: head 40
    report = verify(journal, decode=False)
    assert (report.first_bad_seq, report.events, report.head) == (40, 39, chain[38])


def test_format_3_has_no_failed_status_without_a_final_record(journal: Path, chain: list[str]) -> None:
    sql(journal, "DELETE FROM blocks WHERE first_seq >= 42")
    set_meta(journal, "head_seq", "41")
    set_meta(journal, "head_hash", chain[40])
    set_meta(journal, "status", "failed")
    report = verify(journal)
    assert not report.ok and "the chain has no final record" in report.problem
    set_meta(journal, "format_version", "2")  # format 2 allowed it
    assert verify(journal).ok


def test_a_journal_being_written(tmp_path: Path, journal: Path) -> None:
    from tidemark.journal.lock import WriterLock

    lock = WriterLock(journal)
    try:
        report = verify(journal)
        assert (report.ok, report.status, report.live, report.sealed) == (True, "being written", True, False)
    finally:
        lock.release()
    empty = tmp_path / "new.journal"
    sqlite3.connect(empty).close()  # created; its tables not committed yet
    lock = WriterLock(empty)
    try:
        report = verify(empty)
        assert report == VerifyReport(True, 0, GENESIS.hex(), status="being written", live=True)
    finally:
        lock.release()
    assert not verify(empty).ok


def test_a_header_naming_the_key_without_checkpoints_fails_the_key_check(tmp_path: Path) -> None:
    import json

    from tidemark.core.bus import Bus
    from tidemark.core.events import Bar, RunStarted
    from tidemark.journal.signing import Signer, new_key
    from tidemark.journal.writer import JournalWriter

    private, public, _ = new_key()
    (tmp_path / "k.pem").write_bytes(private)
    (tmp_path / "k.pub").write_bytes(public)
    signer = Signer.load(tmp_path / "k.pem")
    assert signer is not None
    path = tmp_path / "named.journal"

    async def write() -> None:
        writer = await JournalWriter.create(path, overwrite=True)
        bus = Bus(writer)
        bus.feed(RunStarted(0, "r", "{}", "h", json.dumps({"signing_key": signer.fingerprint}), "0.0.0"))
        bus.feed(Bar(1_000, "X", 1.0, 2.0, 0.5, 1.5, 10.0, 60))
        await writer.close()

    asyncio.run(write())
    report = verify(path, expect=Expectations(public_key=str(tmp_path / "k.pub")))
    assert (report.ok, report.first_bad_seq, report.problem) == (False, None, "no signed checkpoints in the journal")
    assert verify(path).ok


def test_a_checkpoint_opening_a_block_is_checked(tmp_path: Path) -> None:
    import json

    from tidemark.core.bus import Bus
    from tidemark.core.events import Bar, RunStarted
    from tidemark.journal.signing import Signer, new_key
    from tidemark.journal.writer import JournalWriter

    private, public, _ = new_key()
    (tmp_path / "k.pem").write_bytes(private)
    (tmp_path / "k.pub").write_bytes(public)
    signer = Signer.load(tmp_path / "k.pem")
    assert signer is not None
    path = tmp_path / "blocks.journal"

    async def write() -> None:
        writer = await JournalWriter.create(path, overwrite=True)
        writer._block_size = 2
        bus = Bus(writer)
        bus.feed(RunStarted(0, "r", "{}", "h", json.dumps({"signing_key": signer.fingerprint}), "0.0.0"))
        bus.feed(Bar(1_000, "X", 1.0, 2.0, 0.5, 1.5, 10.0, 60))
        await writer.pump()
        bus.feed(signer.checkpoint(bus.now(), "r", writer.last_seq, writer.head))
        await writer.pump()
        bus.feed(Bar(2_000, "X", 1.0, 2.0, 0.5, 1.5, 10.0, 60))
        await writer.close()

    asyncio.run(write())
    with sqlite3.connect(path) as conn:
        firsts = [int(r[0]) for r in conn.execute("SELECT first_seq FROM blocks ORDER BY first_seq")]
    assert 3 in firsts  # the checkpoint (seq 3) opens a block
    report = verify(path, expect=Expectations(public_key=str(tmp_path / "k.pub")))
    assert report.ok, report.message
    assert (report.checkpoints, report.signed_through) == (1, 2)


def test_files_that_are_no_database(tmp_path: Path) -> None:
    noise = tmp_path / "noise.journal"
    noise.write_bytes(bytes(range(256)) * 64)
    folder = tmp_path / "folder.journal"
    folder.mkdir()
    for path, start in ((noise, "not a tidemark journal"), (folder, "cannot open")):
        report = verify(path)
        assert (report.ok, report.events, report.first_bad_seq) == (False, 0, 1), report.problem
        assert not report.live
        assert report.problem.startswith(start) or report.problem.startswith("SQLite error"), report.problem


def test_an_empty_block_is_damage(journal: Path) -> None:
    sql(
        journal,
        "UPDATE blocks SET n=0, lengths=x'', causes=x'', inputs=x'', hashes=x'', payloads=x'dd00000000' "
        "WHERE first_seq=17",
    )
    report = verify(journal)
    assert (report.first_bad_seq, report.problem) == (17, "block columns disagree in length")


def test_an_anchor_beyond_the_recorded_head_is_not_reported(journal: Path, chain: list[str]) -> None:
    set_meta(journal, "head_seq", "40")
    report = verify(journal, expect=Expectations(expect_head=chain[41]))
    assert (report.first_bad_seq, report.anchor_seq) == (41, None)
    report = verify(journal, expect=Expectations(expect_head=chain[9]))
    assert (report.first_bad_seq, report.anchor_seq) == (41, 10)


def test_a_long_bad_anchor_is_quoted_short(journal: Path) -> None:
    report = verify(journal, expect=Expectations(expect_head="z" * 100))
    assert report.problem == f"--expect-head {'z' * 80!r} is not a chain hash"


def test_the_earliest_time_is_in_range(journal: Path) -> None:
    from tidemark.core.codec import encode
    from tidemark.core.events import RunStarted

    set_payload(journal, 1, encode(RunStarted(-(2**63), "test-run", "{}", "h", "{}", "0.0.0")))
    for decode in (True, False):
        report = verify(journal, decode=decode)  # the chain is sound; only meta's start time now disagrees
        assert (report.first_bad_seq, report.events) == (None, RECORDS), report.message
        assert report.problem.startswith("meta.")
    # Damage later in the same block: the record-by-record check passes record 1 and names record 5.
    set_payload(journal, 5, log_payload(1_001), rechain_after=False)
    report = verify(journal)
    assert (report.first_bad_seq, report.problem) == (5, "hash chain broken (record altered or out of place)")
