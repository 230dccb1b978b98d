"""The risk-sized futures portfolio (seed 003) on synthetic futures with
point values and per-contract commissions, checked by hand-derivable facts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tidemark.adapters.backtest import replay, run_backtest

SPECS = {"ES": (4_500.0, 50.0), "NQ": (15_000.0, 20.0), "CL": (75.0, 1_000.0)}


def futures(tmp_path: Path) -> list[Path]:
    paths = []
    for k, (symbol, (start, _)) in enumerate(SPECS.items()):
        rng = np.random.Generator(np.random.PCG64(100 + k))
        drift = np.where(np.arange(900) % 300 < 150, 0.0008, -0.0008)
        close = start * np.exp(np.cumsum(rng.normal(drift, 0.01)))
        open_ = np.concatenate(([start], close[:-1]))
        frame = pd.DataFrame(
            {
                "date": pd.date_range("2020-01-01", periods=900, freq="D", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
                "open": open_,
                "high": np.maximum(open_, close) * 1.002,
                "low": np.minimum(open_, close) * 0.998,
                "close": close,
                "volume": 1e6,
            }
        )
        path = tmp_path / f"{symbol}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths


def config(heat: float | None) -> dict[str, object]:
    return {
        "initial_cash": 1_000_000,
        "strategies": [
            {"strategy": "futures_trend", "params": {"fast": 20, "slow": 60, "risk_pct": 0.01, "stop_k": 3.0}}
        ],
        "instruments": {
            s: {"kind": "equity_future", "multiplier": m, "fee_per_contract": 2.5} for s, (_, m) in SPECS.items()
        },
        "risk": {"max_open_risk": heat},
    }


def test_contracts_commissions_and_point_values(tmp_path: Path) -> None:
    result = run_backtest(data=futures(tmp_path), config=config(None), journal=tmp_path / "f.journal")
    fills = result.fills
    assert set(fills["instrument"]) == set(SPECS)
    assert (fills["quantity"] == fills["quantity"].round()).all()  # whole contracts
    np.testing.assert_allclose(fills["fee"], fills["quantity"] * 2.5)  # per-contract commission only
    closed = result.trades[~result.trades["open"]]
    assert len(closed) > 6
    for _, t in closed.iterrows():
        points = (t["exit_price"] - t["entry_price"]) * (1 if t["side"] == "long" else -1)
        assert t["gross_pnl"] == pytest.approx(points * t["size"] * SPECS[t["instrument"]][1])
    # the first entry is sized from risk: floor(1% of 1,000,000 / (3 * vol * close * point value))
    first = result.orders.sort_values("seq").iloc[0]
    assert first["quantity"] >= 1 and math.isclose(first["quantity"], round(first["quantity"]))
    assert replay(result.journal).ok


def test_portfolio_heat_cap_refuses_entries(tmp_path: Path) -> None:
    capped = run_backtest(data=futures(tmp_path), config=config(0.015), journal=tmp_path / "h.journal")
    reasons = capped.rejections_by_reason()
    assert reasons.get("max_open_risk", 0) > 0
