"""tidemark fetch: the real ccxt client against the local stand-in exchange."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.standin.binance import BinanceStandIn

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def standin(shared_data: Path) -> Iterator[BinanceStandIn]:
    server = BinanceStandIn(shared_data)
    server.start()
    yield server
    server.stop()


def fetch(standin: BinanceStandIn, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    options = tmp_path / "ccxt.json"
    options.write_text(json.dumps(standin.ccxt_options()))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "tidemark",
        "fetch",
        "--exchange",
        "binance",
        "--ccxt-options",
        str(options),
        "--cache",
        str(tmp_path / "cache"),
        "--json",
        *args,
    ]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_fetch_pages_resumes_and_matches_the_source(standin: BinanceStandIn, tmp_path: Path, shared_data: Path) -> None:
    first = fetch(
        standin, tmp_path, "--symbol", "BTC/USDT", "--timeframe", "1h", "--since", "2025-01-01", "--until", "2025-03-01"
    )
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)[0]
    assert report["rows"] == 59 * 24 + 1 and report["gaps"] == 0 and report["duplicates"] == 0
    assert report["requests"] >= 2  # paged: 1,000 candles a page
    cached = pd.read_parquet(report["path"])
    source = pd.read_feather(shared_data / "ohlcv" / "binance_spot" / "BTC_USDT-1h.feather")
    source = source[(source["date"] >= "2025-01-01") & (source["date"] <= "2025-03-01")].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        cached[["open", "high", "low", "close", "volume"]], source[["open", "high", "low", "close", "volume"]]
    )
    assert (cached["date"].astype("int64").to_numpy() == source["date"].astype("int64").to_numpy()).all()
    standin.requests.clear()
    second = fetch(
        standin, tmp_path, "--symbol", "BTC/USDT", "--timeframe", "1h", "--since", "2025-01-01", "--until", "2025-03-15"
    )
    again = json.loads(second.stdout)[0]
    assert again["added"] == 14 * 24 and again["rows"] == 73 * 24 + 1
    starts = [int(r.split("startTime=")[1].split("&")[0]) for r in standin.requests if "klines" in r]
    last_cached = int(pd.Timestamp("2025-03-01T00:00:00Z").value // 1_000_000)
    assert starts and min(starts) == last_cached + 1  # resumed right after the cache, nothing re-downloaded


def test_fetch_retries_rate_limits_and_gets_funding_and_marks(
    standin: BinanceStandIn, tmp_path: Path, shared_data: Path
) -> None:
    standin.fail_next = 2
    done = fetch(
        standin,
        tmp_path,
        "--symbol",
        "BTC/USDT:USDT",
        "--timeframe",
        "1h",
        "--since",
        "2025-01-01",
        "--until",
        "2025-01-31",
        "--funding",
        "--mark",
    )
    assert done.returncode == 0, done.stderr
    reports = {r["kind"]: r for r in json.loads(done.stdout)}
    assert reports["ohlcv"]["rows"] == 30 * 24 + 1
    assert reports["funding"]["rows"] == 30 * 3 + 1
    assert reports["mark"]["rows"] == 30 * 24 + 1
    funding = pd.read_parquet(reports["funding"]["path"])
    source = pd.read_feather(shared_data / "funding" / "binance_usdm" / "BTC_USDT_USDT-1h-funding_rate.feather")
    source = source[(source["date"] >= "2025-01-01") & (source["date"] <= "2025-01-31")]
    assert funding["open"].tolist() == pytest.approx(source["open"].tolist())


def test_fetched_cache_runs_a_funded_backtest(standin: BinanceStandIn, tmp_path: Path) -> None:
    done = fetch(
        standin,
        tmp_path,
        "--symbol",
        "BTC/USDT:USDT",
        "--timeframe",
        "1h",
        "--since",
        "2025-01-01",
        "--until",
        "2025-02-28",
        "--funding",
        "--mark",
    )
    paths = {r["kind"]: r["path"] for r in json.loads(done.stdout)}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tidemark",
            "backtest",
            "--data",
            paths["ohlcv"],
            "--funding",
            paths["funding"],
            "--mark",
            paths["mark"],
            "--strategy",
            "sma_cross",
            "--param",
            "size=0.1",
            "--param",
            "long_only=false",
            "--journal",
            str(tmp_path / "f.journal"),
            "--no-report",
            "--funding-fallback",
            "skip",
            "--json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    metrics = json.loads(run.stdout)
    assert metrics["funding"] != 0.0 and metrics["trades"] > 3


def test_unknown_market_is_one_line_exit_2(standin: BinanceStandIn, tmp_path: Path) -> None:
    done = fetch(standin, tmp_path, "--symbol", "NOPE/USDT", "--since", "2025-01-01", "--until", "2025-01-02")
    assert done.returncode == 2 and "has no market 'NOPE/USDT'" in done.stderr


def test_backtest_takes_data_by_symbol_from_the_cache(standin: BinanceStandIn, tmp_path: Path) -> None:
    fetch(
        standin, tmp_path, "--symbol", "BTC/USDT", "--timeframe", "1h", "--since", "2025-01-01", "--until", "2025-02-01"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "tidemark",
        "backtest",
        "--data",
        "BTC/USDT",
        "--journal",
        "s.journal",
        "--no-report",
        "--json",
    ]
    run = subprocess.run(cmd, cwd=tmp_path, env={**env}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "no cached" in run.stderr  # the cache is not under ./data here
    (tmp_path / "data").symlink_to(tmp_path / "cache")
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["bars"] == 31 * 24 + 1


def test_the_readme_seed_commands_run_on_fetched_data(standin: BinanceStandIn, tmp_path: Path) -> None:
    """The README's seed-system commands as written: `tidemark fetch` into
    the default cache (data/), then `tidemark backtest --data BTC/USDT ...`
    from it; the fetched bars are the shared Binance files, so the runs equal
    runs on those files (sleeves' final equity is the README's figure)."""
    options = tmp_path / "ccxt.json"
    options.write_text(json.dumps(standin.ccxt_options()))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def tidemark(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "tidemark", *args]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done

    for symbol in ("BTC/USDT", "ETH/USDT"):
        for timeframe, since, until in (("1h", "2024-09-14", "2026-02-20"), ("1d", "2024-10-01", "2026-02-01")):
            tidemark(
                "fetch", "--exchange", "binance", "--ccxt-options", str(options), "--symbol", symbol,
                "--timeframe", timeframe, "--since", since, "--until", until,
            )  # fmt: skip
    examples = ROOT / "docs" / "examples"
    sleeves = tidemark(
        "backtest", "--config", str(examples / "sleeves_seed000.json"), "--timeframe", "1h",
        "--data", "BTC/USDT", "--symbol", "BTCUSDT", "--data", "ETH/USDT", "--symbol", "ETHUSDT",
        "--journal", "sleeves.journal", "--no-report", "--json",
    )  # fmt: skip
    metrics = json.loads(sleeves.stdout)
    assert round(metrics["final_equity"], 2) == 9446.02 and metrics["trades"] == 374
    futures = tidemark(
        "backtest", "--config", str(examples / "futures_trend_seed003.json"), "--timeframe", "1d",
        "--data", "BTC/USDT", "--symbol", "BTC", "--data", "ETH/USDT", "--symbol", "ETH",
        "--journal", "futures.journal", "--no-report", "--json",
    )  # fmt: skip
    from_cache = json.loads(futures.stdout)
    shared = standin.data / "ohlcv" / "binance_spot"
    direct = tidemark(
        "backtest", "--config", str(examples / "futures_trend_seed003.json"),
        "--data", str(shared / "BTC_USDT-1d.feather"), "--symbol", "BTC",
        "--data", str(shared / "ETH_USDT-1d.feather"), "--symbol", "ETH",
        "--journal", "direct.journal", "--no-report", "--json",
    )  # fmt: skip
    on_files = json.loads(direct.stdout)
    assert from_cache["trades"] > 0
    for key in ("final_equity", "trades", "fees_paid", "rejections"):
        assert from_cache[key] == on_files[key], key
    # a universe rule reads the fetched files too (--data BTC/USDT is the cached file)
    command = [sys.executable, "-m", "tidemark", "backtest", "--config", str(examples / "futures_trend_seed003.json")]
    command += ["--timeframe", "1d", "--data", "BTC/USDT", "--symbol", "BTC", "--data", "ETH/USDT", "--symbol", "ETH"]
    command += ["--universe-min", "volume=1e15", "--no-report"]
    none = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert none.returncode == 2 and "universe: no instrument has last volume >= 1e+15 (BTC=" in none.stderr
