"""Seed 001's whole search (its ``main()``) against :func:`overlay_search`, file by file.

The seed's ``main()`` is run from its file (loaded as in
test_overlay_seed001.py) with its inputs replaced in its namespace:

- ``rotation_base`` (its base strategy, never provided): BTC bought and held
  from the first close of the shared Binance USD-M BTC perpetual (1h), as a
  daily curve, with made-up trade statistics;
- ``load_frames``: the shared 1h closes keyed ``(symbol, bar)`` with 4h built
  by :func:`overlay.resample_closes`; BTC and ETH are the USD-M perpetuals
  and, as there is no SOL perpetual in the shared data, ``SOL-USDT-SWAP`` is
  Binance *spot* ETH/USDT (a stand-in of real closes, as in
  test_overlay_seed001.py);
- ``build_short_params``: 24 of its 3,456 sets, 3 of each (bar, family,
  short set), two of them differing only in the symbol momentum cap (which
  ``btc_risk_pair`` ignores: equal curves, so the ranking's ties are
  exercised);
- ``markdown_table``: ``frame.to_csv(index=False)``, also given to our
  report;

and its command line is ``--output-dir out --top 5``. Ours runs on the same
inputs into another folder; every CSV must read back equal (floats to a
relative 1e-12, everything else exactly) and the reports equal apart from
the command line.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.adapters.research.test_overlay_seed001 import BTC, ETH, SOL, load_closes, load_seed, markets
from tidemark.adapters.research import analytics, overlay
from tidemark.adapters.research.overlay_search import OverlaySearch, OverlaySearchError, overlay_search

REL = 1e-12
BASE_NAME = "btc-hold"
BASE_STATS = {"trades": 3, "win_rate": 0.5, "profit_factor": 1.2}
FILES = ("total", "short-leg", "combo", "horizons", "monthly", "worst-rolling", "signal-definitions")


def table(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def frames(shared_data: Path) -> dict[tuple[str, str], pd.DataFrame]:
    """The seed's ``load_frames`` layout: ``{(symbol, bar): frame with a close column}``."""
    perps = markets(shared_data)["perps/1h"]
    spot_eth = load_closes(shared_data / "ohlcv" / "binance_spot" / "ETH_USDT-1h.feather", SOL)
    hours = {BTC: perps[BTC], ETH: perps[ETH], SOL: spot_eth}
    out = {}
    for symbol, closes in hours.items():
        out[(symbol, "1h")] = closes.to_frame("close")
        four = overlay.resample_closes(closes, "4h")
        assert isinstance(four, pd.Series)
        out[(symbol, "4h")] = four.to_frame("close")
    return out


def subset(seed: Any) -> list[Any]:
    """3 sets of each of the 8 (bar, family, short set) kinds, the seed's order kept."""
    rng = np.random.default_rng(21)
    kinds: dict[tuple[Any, ...], list[int]] = {}
    params = seed.build_short_params()
    for k, param in enumerate(params):
        kinds.setdefault((param.bar, param.family, param.short_symbols), []).append(k)
    assert len(kinds) == 8
    chosen: set[int] = set()
    for group in kinds.values():
        first, other = (int(j) for j in rng.choice(len(group) // 3, size=2, replace=False))
        # group[3j] and group[3j + 1] differ only in symbol_max_momentum
        chosen |= {group[3 * first], group[3 * first + 1], group[3 * other + 2]}
    return [params[k] for k in sorted(chosen)]


def run_seed(seed: Any, shared_data: Path, folder: Path, base: pd.Series, params: list[Any], top: int) -> None:
    replaced = {
        "rotation_base": lambda years: (BASE_NAME, base, dict(BASE_STATS)),
        "load_frames": lambda years: frames(shared_data),
        "build_short_params": lambda: list(params),
        "markdown_table": table,
    }
    saved = {name: getattr(seed, name) for name in replaced}
    folder.mkdir()
    argv, here = sys.argv, Path.cwd()
    try:
        for name, value in replaced.items():
            setattr(seed, name, value)
        sys.argv = ["001_short_overlay_mix_search.py", "--output-dir", "out", "--top", str(top)]
        os.chdir(folder)
        assert seed.main() == 0
    finally:
        sys.argv = argv
        os.chdir(here)
        for name, value in saved.items():
            setattr(seed, name, value)


def compare(theirs_dir: Path, ours_dir: Path) -> None:
    for name in FILES:
        theirs = pd.read_csv(theirs_dir / f"overlay-mix-{name}.csv")
        mine = pd.read_csv(ours_dir / f"overlay-mix-{name}.csv")
        assert list(mine.columns) == list(theirs.columns), name
        pd.testing.assert_frame_equal(mine, theirs, check_exact=False, rtol=REL, atol=1e-15, obj=name)
    report = [
        [line for line in (d / "overlay-mix-report.md").read_text().splitlines() if not line.startswith("Run command")]
        for d in (theirs_dir, ours_dir)
    ]
    assert report[1] == report[0]


@pytest.fixture(scope="module")
def seed_main(shared_seeds: Path) -> Any:
    return load_seed(shared_seeds, "seed001_main")


def btc_hold(shared_data: Path) -> pd.Series:
    btc = markets(shared_data)["perps/1h"][BTC]
    return analytics.daily_equity(10_000.0 * btc / btc.iloc[0])


def test_the_search_writes_the_seeds_files(
    seed_main: Any, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = subset(seed_main)
    assert len(params) == 24
    base = btc_hold(shared_data)
    run_seed(seed_main, shared_data, tmp_path / "seed", base, params, top=5)
    printed = capsys.readouterr().out

    search = overlay_search(
        frames(shared_data),
        base,
        BASE_NAME,
        BASE_STATS,
        params=[overlay.ShortOverlay(**dataclasses.asdict(p)) for p in params],
        top=5,
    )
    assert isinstance(search, OverlaySearch)
    written = search.write(tmp_path / "ours" / "out", command="tidemark overlay-search", table=table)
    assert [p.name for p in written] == [f"overlay-mix-{n}.csv" for n in FILES] + ["overlay-mix-report.md"]
    # the report names the files as the seed's does (relative to its working folder)
    (tmp_path / "ours" / "out" / "overlay-mix-report.md").write_text(
        search.report("x", [Path("out") / p.name for p in written], table=table)
    )
    compare(tmp_path / "seed" / "out", tmp_path / "ours" / "out")

    # what the comparison covered: blends that qualified and were selected, ties among the legs
    selected = search.selected
    assert (selected["kind"] == "rotation_plus_btc_risk_short").sum() >= 1
    assert (selected["server_readonly_candidate"] == "yes").any()
    legs = search.short_leg
    assert legs.duplicated(subset=["h1y_return", "h6m_return", "h3m_return", "calmar"]).any()
    assert selected.iloc[0]["name"] in printed


def test_without_a_qualified_blend_the_fallback_is_the_seeds(seed_main: Any, shared_data: Path, tmp_path: Path) -> None:
    """A base that no blend improves (a curve that only rises: no drawdown
    to lower): the three blends of lowest drawdown, as the seed's fallback."""
    params = subset(seed_main)[::3]
    btc = btc_hold(shared_data)
    base = pd.Series(10_000.0 * 1.001 ** np.arange(len(btc)), index=btc.index)
    run_seed(seed_main, shared_data, tmp_path / "seed", base, params, top=3)
    search = overlay_search(
        frames(shared_data),
        base,
        BASE_NAME,
        BASE_STATS,
        params=[overlay.ShortOverlay(**dataclasses.asdict(p)) for p in params],
        top=3,
    )
    assert (search.combo["server_readonly_candidate"] == "no").all()
    assert (search.selected["kind"] == "rotation_plus_btc_risk_short").sum() == 3
    written = search.write(tmp_path / "ours" / "out", table=table)
    (tmp_path / "ours" / "out" / "overlay-mix-report.md").write_text(
        search.report("x", [Path("out") / p.name for p in written], table=table)
    )
    compare(tmp_path / "seed" / "out", tmp_path / "ours" / "out")


def test_workers_change_nothing(seed_main: Any, shared_data: Path) -> None:
    params = [overlay.ShortOverlay(**dataclasses.asdict(p)) for p in subset(seed_main)[::3]]
    runs = [
        overlay_search(
            frames(shared_data), btc_hold(shared_data), BASE_NAME, BASE_STATS, params=params, top=2, workers=w
        )
        for w in (1, 2)
    ]
    for name, table in runs[0].tables().items():
        pd.testing.assert_frame_equal(runs[1].tables()[name], table, check_exact=True, obj=name)


def test_bad_input_is_refused(shared_data: Path) -> None:
    closes = frames(shared_data)
    param = overlay.short_grid("4h")[0]
    base = btc_hold(shared_data)
    with pytest.raises(OverlaySearchError, match="covers fewer than two days"):
        overlay_search(closes, base.iloc[:1], BASE_NAME, BASE_STATS, params=[param])
    early = pd.Series([1.0, 2.0, 3.0], index=pd.date_range("2020-01-01", periods=3, freq="D", tz="UTC"))
    with pytest.raises(OverlaySearchError, match="shares fewer than two days with the closes"):
        overlay_search(closes, early, BASE_NAME, BASE_STATS, params=[param])
    with pytest.raises(OverlaySearchError, match="needs 'trades'"):
        overlay_search(closes, base, BASE_NAME, {}, params=[param])
    once = overlay_search(closes, base, BASE_NAME, BASE_STATS, params=[param, param])
    assert list(once.short_leg["name"]) == [param.name]
    with pytest.raises(OverlaySearchError, match="named twice"):
        overlay_search(closes, base, BASE_NAME, BASE_STATS, params=[param, dataclasses.replace(param, btc=ETH)])
    with pytest.raises(OverlaySearchError, match="none of"):
        overlay_search({"4h": closes[(BTC, "4h")].rename(columns={"close": BTC})}, base, BASE_NAME, BASE_STATS,
                       params=[param])  # fmt: skip
