"""Commands that read a journal verify what they read and refuse a damaged
one with its first bad seq (exit 1, one line), unless --trust, which the
output then states; a journal being written is "being written", never
DAMAGED; a journal with no records is one line, not a traceback."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.journal.forge import set_meta
from tidemark.adapters.backtest import SAMPLE_DIR, Result, run_backtest
from tidemark.adapters.cli import main
from tidemark.journal.errors import JournalIntegrityError
from tidemark.journal.lock import WriterLock
from tidemark.journal.verify import verify
from tidemark.journal.writer import JournalWriter

SAMPLE = SAMPLE_DIR / "SYNTH_BTC-1h.csv"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("read") / "run.journal"
    run_backtest("ema_cross", data=[SAMPLE], journal=path, initial_cash=100_000.0)
    return path


def last_block(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT MAX(first_seq) FROM blocks").fetchone()[0])


def drop_last_block(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        first = last_block(conn)
        conn.execute("DELETE FROM blocks WHERE first_seq=?", (first,))
    return first


def flip_a_bit(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        first = last_block(conn)
        payloads = bytearray(conn.execute("SELECT payloads FROM blocks WHERE first_seq=?", (first,)).fetchone()[0])
        payloads[5] ^= 0x10  # inside the block's first payload
        conn.execute("UPDATE blocks SET payloads=? WHERE first_seq=?", (bytes(payloads), first))
    return first


def edit_config(path: Path) -> None:
    from tidemark.journal.reader import JournalReader

    with JournalReader(path) as reader:
        config = reader.meta["config"]
    set_meta(path, "config", config.replace('"initial_cash":100000.0', '"initial_cash":200000.0'))


DAMAGE: dict[str, tuple[Callable[[Path], int | None], str]] = {
    "missing last block": (drop_last_block, "truncated"),
    "bit flip": (flip_a_bit, "hash chain broken"),
    "meta config edited": (edit_config, "meta.config disagrees"),
}


@pytest.fixture(params=list(DAMAGE))
def damaged(request: pytest.FixtureRequest, pristine: Path, tmp_path: Path) -> tuple[Path, int | None, str]:
    path = tmp_path / "damaged.journal"
    shutil.copyfile(pristine, path)
    damage, problem = DAMAGE[request.param]
    seq = damage(path)
    return path, seq, problem


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


READ_COMMANDS: list[Callable[[Path, Path], list[str]]] = [
    lambda j, tmp: ["report", str(j)],
    lambda j, tmp: ["report", str(j), "--json"],
    lambda j, tmp: ["journal", "show", str(j)],
    lambda j, tmp: ["journal", "export", str(j), "--format", "jsonl", "--out", str(tmp / "export")],
    lambda j, tmp: ["diff", str(j), str(j)],
    lambda j, tmp: ["backtest", "--from-journal", str(j), "--journal", str(tmp / "child.journal"), "--no-report"],
]


@pytest.mark.parametrize("command", range(len(READ_COMMANDS)))
def test_read_commands_refuse_a_damaged_journal_with_its_first_bad_seq(
    damaged: tuple[Path, int | None, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], command: int
) -> None:
    path, seq, problem = damaged
    code, out, err = run(capsys, *READ_COMMANDS[command](path, tmp_path))
    assert code == 1, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"{path}: DAMAGED: " in lines[0] and problem in lines[0], err
    if seq is not None:
        assert f"first bad seq {seq}:" in lines[0]
    assert "--trust" in lines[0]
    assert not (tmp_path / "child.journal").exists()
    assert not list((tmp_path / "export").glob("*")) if (tmp_path / "export").exists() else True


def test_report_with_trust_says_it_is_unverified(
    damaged: tuple[Path, int | None, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, seq, _ = damaged
    code, out, err = run(capsys, "report", str(path), "--trust")
    if code == 1:  # trusted, but a record does not even decode: one line naming it
        assert err.strip().splitlines() == [
            f"tidemark: error: {path}: block at seq {seq}: " + err.split(": ", 4)[-1].strip()
        ]
        return
    assert code == 0 and "UNVERIFIED: read with --trust" in out
    code, out, _ = run(capsys, "report", str(path), "--trust", "--json")
    facts = json.loads(out)
    assert code == 0 and facts["verified"] is False and facts["trusted"] is True


def test_a_rerun_of_a_trusted_parent_says_so(
    damaged: tuple[Path, int | None, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, problem = damaged
    if problem != "meta.config disagrees":
        pytest.skip("a parent whose records are damaged may not rerun at all")
    child = tmp_path / "child.journal"
    args = ["backtest", "--from-journal", str(path), "--journal", str(child), "--no-report", "--trust"]
    code, out, _ = run(capsys, *args)
    assert code == 0 and "UNVERIFIED: read with --trust" in out and child.exists()


def test_verified_reads_say_so(pristine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", str(pristine))
    assert code == 0 and f"verified: {verify(pristine).events} records, head {verify(pristine).head}" in out
    code, out, _ = run(capsys, "report", str(pristine), "--json")
    assert json.loads(out)["verified"] is True


def test_show_prints_the_chain_not_the_edited_meta(
    pristine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "edited.journal"
    shutil.copyfile(pristine, path)
    edit_config(path)
    set_meta(path, "status", "failed")
    code, out, _ = run(capsys, "journal", "show", str(path), "--trust", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["config"]["initial_cash"] == 100_000.0 and shown["meta"]["status"] == "finished"
    assert shown["trusted"] is True


def test_result_from_journal_refuses_damage_and_names_the_seq(pristine: Path, tmp_path: Path) -> None:
    path = tmp_path / "damaged.journal"
    shutil.copyfile(pristine, path)
    seq = drop_last_block(path)
    with pytest.raises(JournalIntegrityError, match=f"first bad seq {seq}") as caught:
        Result.from_journal(path)
    assert caught.value.seq == seq
    trusted = Result.from_journal(path, trust=True)
    assert trusted.check is not None and trusted.check.trusted
    assert trusted.metrics["final_equity"] != Result.from_journal(pristine).metrics["final_equity"]


def test_a_journal_being_created_is_being_written_not_damaged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "new.journal"
    lock = WriterLock(path)  # the writer has the lock and has just created the file
    try:
        sqlite3.connect(path).close()
        path.write_bytes(b"")
        report = verify(path)
        assert report.ok and report.status == "being written" and report.live
        code, out, _ = run(capsys, "verify", str(path))
        assert code == 0 and "being written" in out and "DAMAGED" not in out
    finally:
        lock.release()


def test_a_journal_being_written_verifies_as_far_as_it_is_committed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.journal.helpers import header

    async def scenario() -> None:
        path = tmp_path / "live.journal"
        writer = await JournalWriter.create(path)
        writer.record(1, header(), True, 0)
        await writer.flush()
        report = verify(path)
        assert report.ok and report.events == 1 and report.status == "being written"
        await writer.close()
        assert verify(path).status == "finished"

    asyncio.run(scenario())


def test_a_journal_with_no_records_is_one_line_for_replay_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def empty() -> Path:
        path = tmp_path / "empty.journal"
        writer = await JournalWriter.create(path)
        await writer.close("failed")
        return path

    path = asyncio.run(empty())
    assert verify(path).ok
    for args in (["replay", str(path), "--check"], ["report", str(path)], ["audit", str(path)]):
        code, out, err = run(capsys, *args)
        assert code == 1, (args, out, err)
        assert len(err.strip().splitlines()) == 1 and "has no records" in err, (args, err)
