"""Shared input journals (tidemark.journal.shared): a run journal whose market
inputs are stored once, in an input journal, reads, verifies, replays and
reports as the single-file journal of the same run, and every way of
breaking the pair is caught and named."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tidemark.adapters.backtest import Result, run_backtest
from tidemark.adapters.cli import main
from tidemark.journal.reader import JournalReader
from tidemark.journal.shared import (
    JournalInputsError,
    extract_inputs,
    is_reference,
    share_inputs,
    use_inputs,
)
from tidemark.journal.verify import verify

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tidemark" / "adapters" / "sample_data"
SAMPLE = SAMPLES / "SYNTH_BTC-1h.csv"


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Single-file journals: two parameter sets over the sample, and a run over other data."""
    folder = tmp_path_factory.mktemp("originals")
    out = {
        "a": folder / "a.journal",
        "b": folder / "b.journal",
        "other": folder / "other.journal",
    }
    run_backtest("ema_cross", data=[SAMPLE], journal=out["a"], commission_bps=4.0)
    run_backtest("ema_cross", data=[SAMPLE], journal=out["b"], params={"fast": 5, "slow": 30}, commission_bps=4.0)
    other = sorted(p for p in SAMPLES.glob("*.csv") if p != SAMPLE)[0]
    run_backtest("ema_cross", data=[other], journal=out["other"])
    return out


@pytest.fixture
def shared(originals: dict[str, Path], tmp_path: Path) -> dict[str, Any]:
    """Copies of the originals in runs/, sharing inputs/ (made from a)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    paths = {name: runs / path.name for name, path in originals.items()}
    for name, path in originals.items():
        shutil.copy(path, paths[name])
    inputs = extract_inputs(paths["a"], tmp_path / "inputs")
    done = {name: share_inputs(paths[name], inputs) for name in ("a", "b")}
    return {"paths": paths, "inputs": inputs, "done": done, "folder": tmp_path}


def rows(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute("SELECT * FROM blocks ORDER BY first_seq"))
    finally:
        conn.close()


def test_a_run_journal_has_the_records_chain_and_head_of_its_single_file_journal(
    originals: dict[str, Path], shared: dict[str, Any]
) -> None:
    for name in ("a", "b"):
        original, path = originals[name], shared["paths"][name]
        done = shared["done"][name]
        assert done.records > 0.8 * done.total  # almost all of a backtest is its bars
        assert done.bytes_after < done.bytes_before / 2
        report, before = verify(path), verify(original)
        assert report.ok and report.status == "finished"
        assert (report.head, report.events) == (before.head, before.events)
        with JournalReader(original) as one, JournalReader(path) as two:
            assert two.meta["format_version"] == "4" and "inputs_head" in two.meta
            assert two.head() == one.head()
            assert two.counts_by_kind() == one.counts_by_kind()
            assert list(two.records()) == list(one.records())  # seq, event, flag, cause, payload bytes, hash
            assert list(two.records(start=200, end=260)) == list(one.records(start=200, end=260))
            bars = {"kinds": ["bar"], "since": 1_706_000_000_000_000_000}
            assert list(two.events(**bars)) == list(one.events(**bars))
        assert any(is_reference(row) for row in rows(path))
    # the two runs read the same input journal: one copy of the bars
    assert shared["done"]["a"].inputs == shared["done"]["b"].inputs == shared["inputs"]
    assert [p.name for p in shared["inputs"].parent.iterdir()] == [shared["inputs"].name]


def test_results_replay_report_and_diff_are_those_of_the_single_file_journal(
    originals: dict[str, Path], shared: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    path, original = shared["paths"]["a"], originals["a"]
    mine, theirs = Result.from_journal(path), Result.from_journal(original)
    for frame in ("equity", "fills", "orders", "trades", "positions"):
        pd.testing.assert_frame_equal(getattr(mine, frame), getattr(theirs, frame), check_exact=True)
    assert mine.metrics == theirs.metrics or json.dumps(mine.metrics, default=str) == json.dumps(
        theirs.metrics, default=str
    )
    for args in (["replay", str(path)], ["audit", str(path)], ["verify", str(path)]):
        assert main(args) == 0, args
    capsys.readouterr()
    assert main(["report", str(path), "--json"]) == 0
    shared_metrics = json.loads(capsys.readouterr().out)
    assert main(["report", str(original), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == shared_metrics
    assert main(["diff", str(path), str(original)]) == 0
    said = capsys.readouterr().out
    assert "market inputs: identical" in said and "decisions: identical" in said
    rerun = shared["folder"] / "rerun.journal"
    assert main(["backtest", "--from-journal", str(path), "--journal", str(rerun), "--no-report"]) == 0
    capsys.readouterr()
    assert main(["diff", str(rerun), str(original)]) == 0  # the same run again (a child of it), as a single file
    said = capsys.readouterr().out
    assert "market inputs: identical" in said and "decisions: identical" in said


def test_a_run_journal_without_its_input_journal_says_where_it_looked(
    shared: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    lone = tmp_path_factory.mktemp("elsewhere") / "a.journal"  # no inputs/ here, nor one folder up
    shutil.copy(shared["paths"]["a"], lone)
    report = verify(lone)
    assert not report.ok and shared["inputs"].name in report.problem and "--inputs" in report.problem
    with pytest.raises(JournalInputsError, match="not beside it"):
        JournalReader(lone)
    assert main(["verify", str(lone)]) == 1
    err = capsys.readouterr()
    assert shared["inputs"].name in err.out + err.err
    assert main(["verify", str(lone), "--inputs", str(shared["inputs"])]) == 0
    assert main(["report", str(lone), "--inputs", str(lone.parent / "nope.journal")]) == 2
    assert "--inputs" in capsys.readouterr().err


def test_an_altered_input_record_is_named_in_the_input_journal(shared: dict[str, Any]) -> None:
    inputs, path = shared["inputs"], shared["paths"]["b"]
    conn = sqlite3.connect(inputs)
    try:
        first, payloads = conn.execute("SELECT first_seq, payloads FROM blocks LIMIT 1").fetchone()
        at = len(payloads) // 2
        flipped = payloads[:at] + bytes([payloads[at] ^ 1]) + payloads[at + 1 :]
        conn.execute("UPDATE blocks SET payloads = ? WHERE first_seq = ?", (flipped, first))
        conn.commit()
    finally:
        conn.close()
    report = verify(path)
    assert not report.ok
    assert str(inputs) in report.problem and "first bad seq" in report.problem
    with pytest.raises(Exception, match=r"input journal|DAMAGED|damaged"):
        Result.from_journal(path)


def test_an_altered_reference_is_named_at_its_row(shared: dict[str, Any]) -> None:
    path = shared["paths"]["a"]
    conn = sqlite3.connect(path)
    try:
        refs = [row for row in conn.execute("SELECT * FROM blocks ORDER BY first_seq") if is_reference(row)]
        first, n, causes = refs[1][0], refs[1][1], refs[1][7]
        moved = (int.from_bytes(causes, "little") + 1).to_bytes(8, "little")  # one input record later
        conn.execute("UPDATE blocks SET causes = ? WHERE first_seq = ?", (moved, first))
        conn.commit()
    finally:
        conn.close()
    report = verify(path)
    assert not report.ok and report.first_bad_seq is not None
    assert first <= report.first_bad_seq <= first + n - 1


def test_another_input_journal_under_the_expected_name_is_refused(
    originals: dict[str, Path], shared: dict[str, Any], tmp_path: Path
) -> None:
    other = extract_inputs(originals["other"], tmp_path / "other-inputs")
    shutil.copy(other, shared["inputs"])  # the other data's inputs, in place of the run's
    report = verify(shared["paths"]["a"])
    assert not report.ok and "not" in report.problem and shared["inputs"].name in report.problem


def test_a_journal_over_other_data_keeps_its_own_inputs(shared: dict[str, Any]) -> None:
    path = shared["paths"]["other"]
    before = verify(path)
    done = share_inputs(path, shared["inputs"])
    assert done.records == 0
    assert verify(path).head == before.head
    assert not any(is_reference(row) for row in rows(path))


def test_sharing_is_deterministic(originals: dict[str, Path], tmp_path: Path) -> None:
    made = []
    for k in range(2):
        folder = tmp_path / f"copy{k}"
        folder.mkdir()
        journal = folder / "a.journal"
        shutil.copy(originals["a"], journal)
        inputs = extract_inputs(journal, folder / "inputs")
        share_inputs(journal, inputs)
        made.append((journal.read_bytes(), inputs.read_bytes(), inputs.name))
    assert made[0] == made[1]


def test_only_a_sealed_single_file_journal_is_shared(shared: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="already reads its inputs"):
        share_inputs(shared["paths"]["a"], shared["inputs"])
    with pytest.raises(FileNotFoundError):
        share_inputs(shared["folder"] / "missing.journal", shared["inputs"])


def test_the_share_command(originals: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journals = []
    for name in ("a", "b"):
        journals.append(tmp_path / f"{name}.journal")
        shutil.copy(originals[name], journals[-1])
    heads = [verify(j).head for j in journals]
    assert main(["journal", "share", *map(str, journals), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert Path(out["inputs"]).parent == tmp_path / "inputs"
    assert [row["shared"] > 0 for row in out["journals"]] == [True, True]
    assert [verify(j).head for j in journals] == heads
    assert main(["journal", "share", str(journals[0])]) == 2  # already shared: one line, exit 2
    assert "already reads its inputs" in capsys.readouterr().err


def test_use_inputs_names_an_input_journal_for_a_block(
    shared: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    lone = tmp_path_factory.mktemp("lone") / "lone.journal"
    shutil.copy(shared["paths"]["a"], lone)
    with use_inputs(shared["inputs"]):
        assert verify(lone).ok
        with JournalReader(lone) as reader:
            assert reader.last_seq() > 0
    assert not verify(lone).ok  # only in the block
    assert verify(lone, inputs=shared["inputs"]).ok
    with JournalReader(lone, inputs=shared["inputs"]) as reader:
        assert reader.head()[1] == verify(shared["paths"]["a"]).head


@pytest.mark.parametrize("end", [None, "2024-03-01"])
def test_the_writer_process_stores_references_as_it_writes(
    originals: dict[str, Path], shared: dict[str, Any], tmp_path: Path, end: str | None
) -> None:
    """A run given an input journal writes references from the start: the
    same records, chain and head as the single-file run; a run whose inputs
    are not those (here: ending earlier, so its last bars and final records
    differ; every bar before is shared) stays exact."""
    import asyncio

    from tidemark.adapters.backtest import build_config, execute, open_market, plan_run, result_of

    config = build_config(None, strategy="ema_cross", commission_bps=4.0, end=end)
    config, market, prints = open_market(config, [SAMPLE])
    planned = plan_run(config, market, prints)
    paths = {}
    # both writers: the writer process (backtests) and the in-process one (where no process may start)
    for name, inputs, inline in (
        ("single", None, False),
        ("referring", shared["inputs"], False),
        ("inline", shared["inputs"], True),
    ):
        paths[name] = tmp_path / f"{name}.journal"
        writer = asyncio.run(execute(planned, market, paths[name], inputs=inputs, inline=inline))
        assert result_of(writer).metrics["final_equity"] > 0
    single = verify(paths["single"])
    if end is None:
        assert single.head == verify(originals["a"]).head
    for name in ("referring", "inline"):
        report = verify(paths[name])
        assert report.ok and (report.head, report.events) == (single.head, single.events)
        with JournalReader(paths["single"]) as one, JournalReader(paths[name], inputs=shared["inputs"]) as two:
            assert two.meta["format_version"] == "4"
            assert list(two.records()) == list(one.records())
        assert any(is_reference(row) for row in rows(paths[name]))
        assert paths[name].stat().st_size < paths["single"].stat().st_size / 2
