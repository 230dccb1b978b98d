"""The parsed-CSV cache: a second load of the same file skips parsing and
gives the same bars, and the same journal; a damaged, altered or stale entry
is never used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tidemark.adapters import data as data_module
from tidemark.adapters.data import DataError, load_bars
from tidemark.adapters.parsed_cache import ParsedCache

ROWS = "\n".join(
    f"2024-01-0{1 + h // 24}T{h % 24:02d}:00:00Z,{100 + h},{102 + h},{99 + h},{101 + h},{10 + h}" for h in range(48)
)
GOOD = "date,open,high,low,close,volume\n" + ROWS + "\n"


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("TIDEMARK_DATA_CACHE", str(root))
    return root


def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("parsed the CSV again")

    monkeypatch.setattr(data_module, "read_frame", refuse)


def same_bars(a: data_module.LoadedBars, b: data_module.LoadedBars) -> None:
    for name in ("times", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert getattr(a, name).dtype == getattr(b, name).dtype
    assert (a.symbol, a.path, a.interval, a.fingerprint, a.repairs) == (
        b.symbol,
        b.path,
        b.interval,
        b.fingerprint,
        b.repairs,
    )


def test_a_second_load_reads_the_cache_and_gives_the_same_bars(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "X.csv"
    path.write_text(GOOD)
    first = load_bars(path)
    assert len(list(cache_dir.glob("*.parquet"))) == 1
    no_parsing(monkeypatch)
    second = load_bars(path)
    same_bars(first, second)
    windowed = load_bars(path, start=first.times[10], end=first.times[20])  # windows apply after the cache
    assert np.array_equal(windowed.close, first.close[10:21])


def test_validation_names_the_same_row_from_the_cache(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = GOOD.splitlines()
    lines[7] = lines[7].replace(",106,", ",-5,", 1)  # row 7's high
    path = tmp_path / "BAD.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as miss:
        load_bars(path)
    no_parsing(monkeypatch)
    with pytest.raises(DataError) as hit:
        load_bars(path)
    assert str(hit.value) == str(miss.value)
    assert "row 7" in str(hit.value)
    repaired = load_bars(path, repair="drop")  # a repair works on the cached columns too
    assert len(repaired) == 47 and repaired.repairs


def test_a_changed_file_or_another_tz_misses(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "X.csv"
    path.write_text(GOOD)
    load_bars(path)
    path.write_text(GOOD.replace(",101,", ",101.5,", 1))
    assert load_bars(path).close[0] == 101.5
    naive = tmp_path / "N.csv"
    naive.write_text(GOOD.replace("Z,", ","))
    utc = load_bars(naive, tz="UTC")
    tokyo = load_bars(naive, tz="Asia/Tokyo")
    assert utc.times[0] - tokyo.times[0] == 9 * 3_600_000_000_000
    assert len(list(cache_dir.glob("*.parquet"))) == 4


def test_a_damaged_or_altered_entry_is_never_used(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "X.csv"
    path.write_text(GOOD)
    truth = load_bars(path)
    (entry,) = cache_dir.glob("*.parquet")
    entry.write_bytes(entry.read_bytes()[:100])  # truncated
    same_bars(truth, load_bars(path))
    table = pq.read_table(entry)  # rewritten whole by the miss above
    close = table.column("close").to_numpy().copy()
    close[3] += 1.0
    altered = table.set_column(table.schema.get_field_index("close"), "close", pa.array(close))
    pq.write_table(altered.replace_schema_metadata(table.schema.metadata), entry)
    same_bars(truth, load_bars(path))  # digest differs: parsed again


def test_off_or_an_unwritable_folder_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "X.csv"
    path.write_text(GOOD)
    monkeypatch.setenv("TIDEMARK_DATA_CACHE", "off")
    truth = load_bars(path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("TIDEMARK_DATA_CACHE", str(blocker / "cache"))  # cannot be created
    same_bars(truth, load_bars(path))


def test_the_cli_gives_the_same_journal_on_a_hit_a_miss_and_with_no_cache(tmp_path: Path) -> None:
    path = tmp_path / "X.csv"
    path.write_text(GOOD)
    cache = tmp_path / "cache"

    def head(name: str, *flags: str, cache_env: str = str(cache)) -> str:
        env = {**os.environ, "TIDEMARK_DATA_CACHE": cache_env}
        command = [sys.executable, "-m", "tidemark", "backtest", "--data", str(path), "--strategy", "sma_cross"]
        done = subprocess.run(
            [*command, "--journal", str(tmp_path / name), "--no-report", *flags],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return next(line for line in done.stdout.splitlines() if line.startswith("head:")).split()[1]

    miss = head("a.journal")
    assert len(list(cache.glob("*.parquet"))) == 1
    hit = head("b.journal")
    off = head("c.journal", cache_env="off")
    assert miss == hit == off
    assert (tmp_path / "a.journal").read_bytes() == (tmp_path / "b.journal").read_bytes()


def test_the_cache_keeps_the_most_recently_used_entries_within_its_limit(tmp_path: Path, cache_dir: Path) -> None:
    paths = []
    for k in range(3):
        path = tmp_path / f"F{k}.csv"
        path.write_text(GOOD.replace(",101,", f",101.{k + 1},", 1))
        load_bars(path)
        paths.append(path)
    by_age = sorted(cache_dir.glob("*.parquet"), key=lambda e: e.stat().st_mtime_ns)
    assert len(by_age) == 3
    for age, entry in enumerate(by_age):  # distinct times, oldest first: F0, F1, F2
        os.utime(entry, ns=(10**18 + age * 10**9, 10**18 + age * 10**9))
    oldest = by_age[0]
    load_bars(paths[0])  # a hit on the oldest makes it the newest
    assert oldest.stat().st_mtime_ns > 10**18 + 2 * 10**9
    size = by_age[1].stat().st_size
    ParsedCache(cache_dir).prune(limit=2 * size + size // 2)
    assert sorted(cache_dir.glob("*.parquet")) == sorted([oldest, by_age[2]])  # F1, least recently used, went
