"""Indicators against independent references, causality, and O(1) caching."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tidemark.core.strategy import indicators as ind


@pytest.fixture
def prices() -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(3))
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))


def test_ema_matches_the_recurrence(prices: np.ndarray) -> None:
    alpha = 2 / 13
    expected = [prices[0]]
    for x in prices[1:]:
        expected.append(alpha * x + (1 - alpha) * expected[-1])
    np.testing.assert_allclose(ind.ema(prices, 12), expected, rtol=1e-12)


def test_sma_stdev_highest_lowest(prices: np.ndarray) -> None:
    i = 50
    window = prices[i - 9 : i + 1]
    assert ind.sma(prices, 10)[i] == pytest.approx(window.mean())
    assert ind.stdev(prices, 10)[i] == pytest.approx(window.std(ddof=1))
    assert ind.highest(prices, 10)[i] == window.max()
    assert ind.lowest(prices, 10)[i] == window.min()
    assert np.isnan(ind.sma(prices, 10)[8])


def test_rsi_and_atr_use_wilder_smoothing(prices: np.ndarray) -> None:
    delta = np.diff(prices)
    gain, loss = np.clip(delta, 0, None), np.clip(-delta, 0, None)
    g, lo = gain[0], loss[0]
    for k in range(1, 100):
        g = g + (gain[k] - g) / 14
        lo = lo + (loss[k] - lo) / 14
    assert ind.rsi(prices, 14)[100] == pytest.approx(100 - 100 / (1 + g / lo))
    high, low = prices * 1.01, prices * 0.99
    tr = ind.true_range(high, low, prices)
    a = tr[0]
    for k in range(1, 60):
        a = a + (tr[k] - a) / 14
    assert ind.atr(high, low, prices, 14)[59] == pytest.approx(a)


def test_correlation_and_vol(prices: np.ndarray) -> None:
    other = prices[::-1].copy()
    expected = pd.Series(prices[:40]).corr(pd.Series(other[:40]))
    assert ind.correlation(prices, other, 40)[39] == pytest.approx(expected)
    rets = pd.Series(prices).pct_change()
    assert ind.ewm_vol(prices, 20)[-1] == pytest.approx(rets.ewm(span=20, adjust=False).std().iloc[-1])


def test_crossover_and_crossunder() -> None:
    a = np.array([1.0, 2.0, 3.0, 2.0, 1.0])
    b = np.full(5, 2.0)
    assert ind.crossover(a, b).tolist() == [False, False, True, False, False]
    assert ind.crossunder(a, b).tolist() == [False, False, False, False, True]


@pytest.mark.parametrize("name", ["sma", "ema", "rsi", "stdev", "highest", "lowest", "ewm_vol"])
def test_every_indicator_is_causal(prices: np.ndarray, name: str) -> None:
    """The value at j must not change when data after j changes."""
    func = ind.FUNCTIONS[name]
    full = func(prices, 10)
    for j in (20, 150, 299):
        changed = prices.copy()
        changed[j + 1 :] *= 3.0
        np.testing.assert_array_equal(func(changed, 10)[: j + 1], full[: j + 1])
