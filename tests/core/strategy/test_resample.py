"""``ctx.data[symbol].resample(tf)``: coarser bars built causally, the same
as pandas' resample of the bars, each shown only once it has closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.series import InstrumentSeries, MarketSeries
from tidemark.core.strategy.context import Context

H = 3_600_000_000_000


def _market(closes: np.ndarray, present: np.ndarray, start_hour: int) -> MarketSeries:
    n = len(closes)
    timeline = (start_hour + np.arange(1, n + 1, dtype=np.int64)) * H + 1_704_067_200_000_000_000
    opens = closes * 0.999
    series = InstrumentSeries("X", H, opens, closes * 1.01, closes * 0.98, closes, np.arange(1.0, n + 1.0), present)
    for name in ("open", "high", "low", "close", "volume"):
        getattr(series, name)[~present] = np.nan
    return MarketSeries(timeline, {"X": series})


def _reference(market: MarketSeries, rule: str, upto: int) -> pd.DataFrame:
    """pandas' resample of the bars closed by ``upto`` (ns), complete buckets only."""
    rule = {"1d": "24h"}.get(rule, rule)  # pandas' day rule ignores the epoch origin on tz-aware data
    s = market.instruments["X"]
    keep = s.present
    opens = pd.to_datetime(market.timeline[keep] - H, unit="ns", utc=True)
    frame = pd.DataFrame(
        {
            "open": s.open[keep],
            "high": s.high[keep],
            "low": s.low[keep],
            "close": s.close[keep],
            "volume": s.volume[keep],
        },
        index=opens,
    )
    out = frame.resample(rule, origin="epoch").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    out = out.dropna(subset=["open"])
    ends = out.index + pd.Timedelta(rule)
    return out[ends.asi8 <= upto]


@settings(max_examples=80)
@given(
    n=st.integers(1, 80),
    start_hour=st.integers(0, 23),
    seed=st.integers(0, 1000),
    rule=st.sampled_from(["2h", "4h", "1d"]),
    holes=st.floats(0.0, 0.3),
)
def test_resampled_bars_equal_pandas_and_never_show_an_open_bar(
    n: int, start_hour: int, seed: int, rule: str, holes: float
) -> None:
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    present = rng.random(n) >= holes
    present[0] = True
    market = _market(closes, present, start_hour)
    portfolio = Portfolio(1e6)
    ctx = Context("s", ["X"], {}, market, portfolio, bus=None)
    coarse = ctx.data["X"].resample(rule)
    for step in range(n):
        ctx._move_to(step + 1)
        expected = _reference(market, rule, int(market.timeline[step]))
        got: Any = coarse
        assert len(got.close) == len(expected)
        np.testing.assert_array_equal(got.open, expected["open"].to_numpy())
        np.testing.assert_array_equal(got.high, expected["high"].to_numpy())
        np.testing.assert_array_equal(got.low, expected["low"].to_numpy())
        np.testing.assert_array_equal(got.close, expected["close"].to_numpy())
        np.testing.assert_allclose(got.volume, expected["volume"].to_numpy())
        assert (got.time <= market.timeline[step]).all()  # nothing shown before it closed


def test_indicators_over_resampled_bars_are_cached_views(tmp_path: Path) -> None:
    market = _market(np.linspace(100, 200, 48), np.ones(48, bool), 0)
    ctx = Context("s", ["X"], {}, market, Portfolio(1e6), bus=None)
    ctx._move_to(48)
    first = ctx.ind.sma(ctx.data["X"].resample("4h").close, 3)
    ctx._move_to(48)
    again = ctx.ind.sma(ctx.data["X"].resample("4h").close, 3)
    assert again.base is first.base  # computed once over the whole coarse series
    assert len(first) == 12
