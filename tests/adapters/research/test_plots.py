"""The research pages: histograms that count what they show, percentile
marks where the percentiles are, one curve per run and the blend."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tidemark.adapters.backtest import SAMPLE_DIR, Result, run_backtest
from tidemark.adapters.cli import main
from tidemark.adapters.research import montecarlo as mc
from tidemark.adapters.research.plots import PAD, WIDTH, histogram_svg, lines_svg

SAMPLE = SAMPLE_DIR / "SYNTH_BTC-1h.csv"


def test_a_histogram_counts_every_finite_value_in_its_bins() -> None:
    values = np.random.default_rng(3).normal(0, 1, 500)
    values[:7] = np.nan
    svg = histogram_svg(values, "x", bins=20, marks={"p50": float(np.nanmedian(values))})
    counts = [int(c) for c in re.findall(r'data-count="(\d+)"', svg)]
    expected, _ = np.histogram(values[np.isfinite(values)], bins=20)
    assert counts == expected.tolist() and sum(counts) == 493
    (x,) = re.findall(r'<line x1="([\d.]+)"', svg)
    low, high = np.nanmin(values), np.nanmax(values)
    assert float(x) == pytest.approx(PAD + (np.nanmedian(values) - low) / (high - low) * (WIDTH - 2 * PAD), abs=0.01)


def test_a_histogram_of_nothing_says_so() -> None:
    assert "no finite values" in histogram_svg(np.array([np.nan]), "x")


def test_lines_span_the_chart_from_first_to_last_time() -> None:
    index = pd.date_range("2024-01-01", periods=50, freq="1D", tz="UTC")
    svg = lines_svg({"a": pd.Series(np.linspace(1, 2, 50), index=index)}, "t")
    (points,) = re.findall(r'points="([^"]+)"', svg)
    first, last = points.split()[0].split(","), points.split()[-1].split(",")
    assert float(first[0]) == PAD and float(last[0]) == WIDTH - PAD and float(first[1]) > float(last[1])


@pytest.fixture(scope="module")
def journals(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("plots")
    paths = []
    for name, fast in (("a", 5), ("b", 20)):
        path = folder / f"{name}.journal"
        run_backtest("ema_cross", data=[SAMPLE], params={"fast": fast}, journal=path)
        paths.append(path)
    return paths


def test_montecarlo_html_shows_the_percentiles_it_prints(
    journals: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "mc.html"
    assert main(["montecarlo", str(journals[0]), "--n", "200", "--seed", "2", "--html", str(page)]) == 0
    text = page.read_text()
    assert text.count("<svg") == 4  # final equity and max drawdown, for each bootstrap
    trades = mc.bootstrap_trades(Result.from_journal(journals[0]), n=200, seed=2)
    median = mc.percentiles(trades).loc["p50", "final_equity"]
    assert f"{median:,.2f}" in text
    counts = [int(c) for c in re.findall(r'data-count="(\d+)"', text.split("<svg")[1])]
    assert sum(counts) == 200
    assert "http" not in text.replace("http://www.w3.org", "")  # nothing fetched


def test_analyze_html_draws_each_run_and_the_blend(
    journals: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "an.html"
    args = ["analyze", *map(str, journals), "--weights", "a=0.5,b=0.5", "--html", str(page)]
    assert main(args) == 0
    text = page.read_text()
    assert text.count("<polyline") == 3 and ">blend</text>" in text and "a.monthly" in text
