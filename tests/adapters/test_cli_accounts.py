"""Accounts and costs from the command line: one default cash, --leverage,
the account and currency in the summary, costs that cannot be negative."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tidemark" / "adapters" / "sample_data" / "SYNTH_BTC-1h.csv"


def tidemark(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tidemark", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def summary(stdout: str) -> dict[str, str]:
    rows = {}
    for line in stdout.splitlines():
        key, _, value = line.partition("  ")
        if value:
            rows[key.strip()] = value.strip()
    return rows


def test_the_default_cash_is_the_same_with_or_without_data(tmp_path: Path) -> None:
    bare = tidemark("backtest", "--no-report", "--json", cwd=tmp_path)
    given = tidemark("backtest", "--data", str(SAMPLE), "--no-report", "--json", "--force", cwd=tmp_path)
    assert bare.returncode == 0 and given.returncode == 0, (bare.stderr, given.stderr)
    assert json.loads(bare.stdout)["initial_cash"] == json.loads(given.stdout)["initial_cash"] == 100_000.0


def test_the_summary_names_the_account_leverage_and_currency(tmp_path: Path) -> None:
    done = tidemark(
        "backtest", "--param", "size=3", "--leverage", "2", "--commission-bps", "4", "--no-report", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    rows = summary(done.stdout)
    assert rows["account"] == "margin, leverage 2x"
    assert rows["initial cash"] == "100,000.00 USD" and rows["fees paid"].endswith(" USD")
    assert not [line for line in done.stdout.splitlines() if "no commission" in line]
    cash = tidemark("backtest", "--param", "size=3", "--no-report", "--force", cwd=tmp_path)
    assert summary(cash.stdout)["account"] == "cash, leverage 1x"
    assert "warning: no commission configured" in cash.stdout


def test_a_spot_buy_beyond_the_cash_is_refused_and_counted(tmp_path: Path) -> None:
    done = tidemark("backtest", "--cash", "10000", "--no-report", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    # 1 unit near 42,000 on 10,000 of cash: every entry is refused, none fills
    assert metrics["trades"] == 0 and metrics["open_trades"] == 0 and metrics["rejections"] > 10
    assert metrics["final_equity"] == 10_000.0
    text = tidemark("report", metrics["journal"], cwd=tmp_path)
    assert "orders refused (insufficient_cash" in text.stdout


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--commission-bps", "-1"], "commission_bps must be >= 0"),
        (["--slippage-bps", "-2"], "slippage_bps must be >= 0"),
        (["--leverage", "0"], "leverage must be > 0"),
        (["--account", "cash", "--leverage", "3"], "a cash account cannot use leverage > 1"),
        (["--borrow-rate", "0.05"], "borrowing (borrow_rate) needs a margin account"),
    ],
)
def test_impossible_costs_and_accounts_are_one_line_errors(tmp_path: Path, flags: list[str], message: str) -> None:
    done = tidemark("backtest", *flags, "--no-report", cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("runs/*.journal"))


def test_a_maker_rebate_must_be_asked_for(tmp_path: Path) -> None:
    config = tmp_path / "rebate.json"
    config.write_text(json.dumps({"maker_bps": -1, "taker_bps": 5}))
    refused = tidemark("backtest", "--config", str(config), "--no-report", cwd=tmp_path)
    assert refused.returncode == 2 and "set maker_rebate: true" in refused.stderr
    config.write_text(json.dumps({"maker_bps": -1, "taker_bps": 5, "maker_rebate": True}))
    allowed = tidemark("backtest", "--config", str(config), "--no-report", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
