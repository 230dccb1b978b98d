"""The sleeves built-in reproduces seed 000's own run_portfolio_backtest,
run from ../shared/seeds, on the same bars: final equity, the equity of every
bar, every entry and pyramid (time, price, size), and the counts of trade
events and rejections by sleeve and reason."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tidemark

SEED_MODEL = {
    # seed 000's order model as a run config: 4 bp fees, 5 bp slippage on
    # entries, exits and the target, stops before targets in a bar, and a
    # margin account (its book reaches 140% of equity).
    "initial_cash": 10_000,
    "commission_bps": 4,
    "slippage_bps": 5,
    "limit_slippage_bps": 5,
    "intrabar": "pessimistic",
    "account": "margin",
    "leverage": 3,
    "strategies": [{"strategy": "sleeves"}],
}


@pytest.fixture(scope="module")
def harness(shared_seeds: Path) -> Any:
    path = shared_seeds / "harness" / "seed000_smoke.py"
    spec = importlib.util.spec_from_file_location("seed000_smoke", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["seed000_smoke"] = module
    spec.loader.exec_module(module)  # loads the seed itself from 000_portfolio_sleeves_backtest.py.txt
    return module


def seed_columns(harness: Any) -> Any:
    """The harness's own derivation of the seed's columns (the part of its
    make_symbol_frame after the prices), as a function of OHLC bars."""
    lines = inspect.getsource(harness.make_symbol_frame).splitlines()
    start = next(k for k, line in enumerate(lines) if line.strip().startswith("df = pd.DataFrame"))
    body = textwrap.dedent("\n".join(lines[start + 1 :]))
    namespace: dict[str, Any] = {"np": np, "pd": pd}
    exec("def derive(df):\n" + textwrap.indent(body, "    "), namespace)
    return namespace["derive"]


def compare(harness: Any, market: dict[str, pd.DataFrame], tmp_path: Path) -> dict[str, Any]:
    trades, cash, curve = harness.run_portfolio_backtest(market)
    frames = {}
    for symbol, df in market.items():
        bars = df[["open", "high", "low", "close"]].copy()
        bars["volume"] = 1e9
        bars.index.name = "date"
        frames[symbol] = bars
    result = tidemark.backtest(frames, config=SEED_MODEL, journal=tmp_path / "sleeves.journal")
    assert result.metrics["rejections"] == 0  # the venue and the account refused nothing the seed took

    assert result.metrics["final_equity"] == pytest.approx(cash, rel=1e-9)
    ours = result.equity["equity"]
    ours.index = ours.index - pd.Timedelta(hours=1)  # tidemark stamps a bar at its close, the seed at its open
    joined = pd.concat([curve["equity"], ours], axis=1, keys=["seed", "tidemark"]).dropna()
    assert len(joined) == len(curve)
    np.testing.assert_allclose(joined["tidemark"], joined["seed"], rtol=1e-9)

    seed_entries = sorted(
        (t["symbol"], pd.Timestamp(t["time"]), round(t["price"], 6), t["size"], t["type"])
        for t in trades
        if t["type"] in ("entry", "pyramid")
    )
    at_close = set(result.orders.loc[result.orders["type"] == "market_on_close", "order_id"])
    buys = result.fills[(result.fills["side"] == "buy") & ~result.fills["order_id"].str.contains(r"\.")]
    hour = pd.Timedelta(hours=1)  # a pyramid fills at the close; the seed stamps it with the bar's open
    ours_entries = sorted(
        (f.instrument, f.exec_time - (hour if f.order_id in at_close else 0 * hour), round(f.price, 6), f.quantity)
        for f in buys.itertuples()
    )
    assert [e[:3] for e in ours_entries] == [e[:3] for e in seed_entries]
    np.testing.assert_allclose([e[3] for e in ours_entries], [e[3] for e in seed_entries], rtol=1e-9)

    counters = result.counters
    events = counters[counters["name"] == "events"]
    seed_events = Counter(f"{t['strategy']}/{t['type']}" for t in trades)
    assert dict(zip(events["key"], events["count"], strict=True)) == dict(seed_events)
    rejects = counters[counters["name"] == "reject"]
    seed_rejects = curve.attrs["rejection_reasons"]
    assert dict(zip(rejects["key"], rejects["count"], strict=True)) == {
        f"{s}/{r}": int(n) for s, r, n in seed_rejects.itertuples(index=False)
    }
    return {"entries": len(seed_entries), "final": cash, "rejections": int(seed_rejects["count"].sum())}


def test_the_smoke_market_reproduces_the_seed(harness: Any, tmp_path: Path) -> None:
    figures = compare(harness, harness.build_market_data(), tmp_path)
    assert figures["entries"] > 100 and figures["rejections"] > 1000


def test_real_binance_hours_reproduce_the_seed(harness: Any, shared_data: Path, tmp_path: Path) -> None:
    """The last 3,000 hours of each file: ETH's start two hours before BTC's,
    so warm-up, cooldown and lookbacks must count each symbol's own bars."""
    derive = seed_columns(harness)
    market = {}
    for symbol, name in (("BTCUSDT", "BTC_USDT"), ("ETHUSDT", "ETH_USDT")):
        raw = pd.read_feather(shared_data / "ohlcv" / "binance_spot" / f"{name}-1h.feather")
        bars = raw.set_index("date")[["open", "high", "low", "close"]].iloc[-3000:].astype(float)
        market[symbol] = derive(bars)
    figures = compare(harness, market, tmp_path)
    assert figures["entries"] > 20
