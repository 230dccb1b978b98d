"""The command line never shows a traceback for a mistake, and says what
it did: versions, flags anywhere, human times, results on disk."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tidemark.adapters.progress import ProgressBar

ROOT = Path(__file__).resolve().parents[2]


def tidemark(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tidemark", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("polish")
    done = tidemark("backtest", "--no-report", "--journal", "run.journal", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return cwd / "run.journal"


def test_version_and_global_flags_after_the_subcommand(journal: Path) -> None:
    version = tidemark("--version", cwd=journal.parent)
    assert version.returncode == 0 and version.stdout.strip() == "tidemark 0.1.0"
    for flags in (["-v"], ["--log-json"]):
        done = tidemark("verify", str(journal), *flags, cwd=journal.parent)
        assert done.returncode == 0 and ": ok," in done.stdout, done.stderr


def test_replay_checks_by_default_and_show_gives_human_times(journal: Path) -> None:
    replay = tidemark("replay", str(journal), cwd=journal.parent)
    assert replay.returncode == 0 and "replay identical" in replay.stdout
    show = tidemark("journal", "show", str(journal), cwd=journal.parent)
    assert "started_ts       1704067200000000000 (2024-01-01T00:00:00Z)" in show.stdout


def test_the_summary_names_the_data_period_and_timeframe(journal: Path) -> None:
    report = tidemark("report", str(journal), "--html", "r.html", cwd=journal.parent)
    lines = report.stdout.splitlines()
    assert "data               SYNTH_BTC-1h.csv" in lines
    assert "period             2024-01-01 01:00 .. 2024-06-15 16:00 UTC" in lines
    assert "timeframe          1h" in lines
    assert lines[-1] == "report: r.html" and (journal.parent / "r.html").exists()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_writes_the_results_with_iso_times(journal: Path, fmt: str) -> None:
    out = journal.parent / f"export-{fmt}"
    done = tidemark("journal", "export", str(journal), "--format", fmt, "--out", str(out), cwd=journal.parent)
    assert done.returncode == 0, done.stderr
    for name in ("trades", "equity", "orders", "fills", "positions", "rejections", "funding"):
        assert (out / "results" / f"{name}.{fmt}").exists(), name
    metrics = json.loads((out / "results" / "metrics.json").read_text())
    assert metrics["currency"] == "USD" and metrics["trades"] == 76
    if fmt == "csv":
        trades = pd.read_csv(out / "results" / "trades.csv")
        assert trades["entry_time"].iloc[0] == "2024-01-03T04:00:00Z"
    else:
        fill = json.loads((out / "results" / "fills.jsonl").read_text().splitlines()[0])
        assert fill["exec_time"] == "2024-01-03T04:00:00Z" and fill["fee_currency"] == "USD"


def test_mistakes_are_one_line_with_the_right_exit_code(tmp_path: Path) -> None:
    cases = [
        (["backtest", "--param", "fast=30"], 2, "ema_cross: cannot start: strategy builtin:ema_cross line"),
        # no data runs on cash_carry's bundled sample; one spot file alone cannot carry
        (
            [
                "backtest",
                "--strategy",
                "cash_carry",
                "--data",
                str(ROOT / "tidemark/adapters/sample_data/SYNTH_BTC-1h.csv"),
            ],
            2,
            "cash_carry needs the spot symbol",
        ),
        (["backtest", "--tz", "Mars/Base"], 2, "--tz 'Mars/Base': not a timezone"),
    ]
    for args, code, message in cases:
        done = tidemark(*args, "--no-report", cwd=tmp_path)
        assert done.returncode == code, (args, done.stderr)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr


def test_a_strategy_error_names_its_file_line_bar_and_symbol(tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text(
        "def schema():\n    return {'id': 'boom'}\n\n\ndef on_bar(ctx, i):\n    if i == 50:\n        1 / 0\n"
    )
    done = tidemark("backtest", "--strategy", "boom.py", "--no-report", cwd=tmp_path)
    assert done.returncode == 1
    line = done.stderr.strip()
    assert line.startswith(
        "tidemark: error: strategy boom.py line 7 (on_bar), at the bar of 2024-01-03T03:00:00Z SYNTH_BTC: "
        "ZeroDivisionError: division by zero (the journal "
    )
    assert "is sealed 'failed' at seq" in line and line.endswith("; -v for the traceback)") and "\n" not in line


def test_a_rerun_writes_a_report_like_a_backtest(journal: Path) -> None:
    done = tidemark(
        "backtest",
        "--from-journal",
        str(journal),
        "--param",
        "fast=8",
        "--journal",
        "child.journal",
        cwd=journal.parent,
    )
    assert done.returncode == 0, done.stderr
    assert "report:  child.html" in done.stdout and (journal.parent / "child.html").exists()


def test_progress_without_a_terminal_is_a_line_every_few_seconds() -> None:
    stream = io.StringIO()
    bar = ProgressBar("backtest", stream=stream, every=0.0)
    bar(500, 1000)
    bar(1000, 1000)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("backtest: 500/1,000 bars (50%)") and "s left" in lines[0]
    quiet = io.StringIO()
    slow = ProgressBar("backtest", stream=quiet, every=60.0)
    slow(10, 1000)
    assert quiet.getvalue() == ""


def _all_urls(base: str) -> dict[str, object]:
    """Every Binance API URL pointed at ``base`` (nothing reaches the internet)."""
    import ccxt

    urls = {}
    for exchange in (ccxt.binance(), ccxt.binanceusdm()):
        for name, url in exchange.describe()["urls"]["api"].items():
            urls[name] = base + "/" + url.split("://", 1)[1].split("/", 1)[1]
    return {"urls": {"api": urls}, "options": {"fetchMarkets": {"types": ["spot", "linear"]}}, "timeout": 1500}


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A local port that accepts connections and never answers."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


@pytest.mark.parametrize("cause", ["refused", "timeout"])
def test_an_unreachable_exchange_fails_fast_with_the_root_cause(tmp_path: Path, cause: str, silent_port: int) -> None:
    import socket
    import time

    if cause == "refused":
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()  # nothing listens there any more
        expected = f"connection refused by 127.0.0.1:{port}"
    else:
        port = silent_port
        expected = "timeout: no answer to the first request"
    options = tmp_path / "ccxt.json"
    options.write_text(json.dumps(_all_urls(f"http://127.0.0.1:{port}")))
    commands = [
        ["fetch", "--exchange", "binance", "--symbol", "BTC/USDT", "--since", "2024-01-01", "--cache", "c"],
        ["paper", "--exchange", "binanceusdm", "--symbol", "BTC/USDT:USDT", "--duration", "1m", "--rest"],
    ]
    for command in commands:
        start = time.monotonic()
        done = tidemark(*command, "--ccxt-options", str(options), cwd=tmp_path)
        elapsed = time.monotonic() - start
        assert done.returncode == 1, (command, done.stderr)
        assert done.stderr.strip().splitlines()[-1].endswith(expected), done.stderr
        assert elapsed < 20, f"{command[0]} took {elapsed:.1f} s"
