"""A run's warnings come from its journal: costs left out, repaired data,
refused orders (ruin and the halt: tests/core/accounts/test_solvency.py)."""

from __future__ import annotations

from pathlib import Path

from tests.kit import write_bars
from tidemark.adapters.backtest import Result, run_backtest


def test_warnings_name_missing_costs_repairs_and_refusals(tmp_path: Path) -> None:
    data = write_bars(tmp_path / "X.csv", [100.0 + i % 5 for i in range(80)])
    lines = data.read_text().splitlines()
    fields = lines[10].split(",")
    lines[10] = ",".join([*fields[:4], "", fields[5]])  # a missing close
    data.write_text("\n".join(lines) + "\n")
    result = run_backtest(
        "ema_cross",
        data=[data],
        params={"fast": 2, "slow": 4, "size": 30},  # 30 units near 100 on 1,000 of cash: refused
        initial_cash=1_000,
        repair="drop",
        journal=tmp_path / "j.journal",
    )
    assert result.warnings == [
        "no commission configured: trades pay no commission (set --commission-bps)",
        "data repaired: X: drop_close 1",
        f"{result.metrics['rejections']} orders refused (insufficient_cash {result.metrics['rejections']})",
    ]
    assert Result.from_journal(result.journal).warnings == result.warnings
    paid = run_backtest("ema_cross", data=[data], repair="drop", commission_bps=4, journal=tmp_path / "k.journal")
    assert paid.warnings == ["data repaired: X: drop_close 1"]
