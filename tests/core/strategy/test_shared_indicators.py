"""Runs over the same loaded market (the points of a sweep in one worker)
share the built-in indicators computed over it: each (indicator, window)
once per market, with journals equal to runs that computed everything
themselves. Custom indicators are never shared between runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tidemark.adapters.backtest import build_config, open_market, run_with_results
from tidemark.core.strategy import indicators

SAMPLE = Path(__file__).resolve().parents[3] / "tidemark" / "adapters" / "sample_data" / "SYNTH_BTC-1h.csv"

CUSTOM = """
import numpy as np
import tidemark


class Level(tidemark.Strategy):
    def on_init(self, ctx):
        ctx.ind.register("level", lambda close: np.full(len(close), {level}))

    def on_bar(self, ctx, i):
        ctx.record("level", float(ctx.ind.level(ctx.close)[i]))
"""


def ema_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    ema = indicators.FUNCTIONS["ema"]

    def counted(x: np.ndarray, n: int) -> Any:
        calls.append(n)
        return ema(x, n)

    monkeypatch.setitem(indicators.FUNCTIONS, "ema", counted)
    return calls


def run(config: Any, journal: Path, market: Any = None, prints: Any = None) -> Any:
    return asyncio.run(run_with_results(config, journal=journal, market=market, fingerprints=prints))


def test_runs_over_one_market_compute_each_indicator_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = ema_calls(monkeypatch)
    points = [{"fast": 5, "slow": 20}, {"fast": 5, "slow": 30}, {"fast": 10, "slow": 20}]
    configs = [build_config(None, strategy="ema_cross", params=p, data=[str(SAMPLE)]) for p in points]
    journaled, market, prints = open_market(configs[0])
    shared = [
        run(build_config(journaled, params=p), tmp_path / f"shared{k}.journal", market, prints)
        for k, p in enumerate(points)
    ]
    assert sorted(set(calls)) == [5, 10, 20, 30] and len(calls) == 4  # each window once, over the three runs
    calls.clear()
    alone = [run(config, tmp_path / f"alone{k}.journal") for k, config in enumerate(configs)]
    assert len(calls) == 6  # each run computed its own two
    for a, b in zip(shared, alone, strict=True):
        assert a.head == b.head
        assert a.journal.read_bytes() == b.journal.read_bytes()


def test_custom_indicators_of_the_same_name_are_not_shared(tmp_path: Path) -> None:
    config = build_config(None, data=[str(SAMPLE)])
    strategies = []
    for level in (1.0, 2.0):
        path = tmp_path / f"level{level:.0f}.py"
        path.write_text(CUSTOM.format(level=level))
        strategies.append(build_config(config, strategy=str(path)))
    journaled, market, prints = open_market(strategies[0])
    one, two = (
        run(build_config(journaled, strategy=s.strategy), tmp_path / f"{k}.journal", market, prints)
        for k, s in enumerate(strategies)
    )
    assert set(one.recorded()["level"]) == {1.0}
    assert set(two.recorded()["level"]) == {2.0}
