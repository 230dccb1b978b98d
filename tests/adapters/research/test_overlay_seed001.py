"""The short-overlay research model against seed 001's own functions.

Seed 001 (../shared/seeds/001_short_overlay_mix_search.py.txt) imports three
modules that were never provided (the rotation strategy it blends into and
a Markdown helper); its own functions used here need only pandas. The seed
is executed from its file with empty stand-ins for those three modules in
``sys.modules`` (restored afterwards), and its ``short_weights``,
``equity_from_weights``, ``trade_stats``, ``combine``, ``metrics``,
``daily``, ``monthly_rows``, ``worst_rolling_rows``, ``horizon_rows``,
``horizon_return_fields``, ``recent_not_worse`` and ``build_short_params``
are compared with :mod:`tidemark.adapters.research.overlay` and
:mod:`tidemark.adapters.research.analytics` on the same real closes.

The market: the shared data's Binance USD-M BTC and ETH perpetuals, 1h
(2024-12-31 .. 2026-02-19), and 4h bars built from them. The seed traded
OKX BTC/ETH/SOL USDT swaps; there is no SOL perpetual in the shared data,
so with the seed's own symbol names a parameter set shorting ETH and SOL
shorts ETH alone (the seed leaves out symbols its closes lack). To exercise
the split between two shorted symbols, a second market names Binance
*spot* ETH/USDT as the seed's ``SOL-USDT-SWAP`` column: a stand-in made of
real closes, not SOL.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tidemark.adapters.research import analytics, overlay

SEED_FILE = "001_short_overlay_mix_search.py.txt"
MISSING = ("scripts", "scripts.refine_expansion_rotation_risk", "scripts.search_expansion_rotation")
REL = 1e-12
HOUR = pd.Timedelta(hours=1)
BTC, ETH, SOL = "BTC-USDT-SWAP", "ETH-USDT-SWAP", "SOL-USDT-SWAP"


def load_seed(shared_seeds: Path, name: str = "seed001") -> Any:
    """Seed 001 executed from its file as the module ``name``, with empty
    stand-ins for its missing imports in ``sys.modules`` for the time of
    loading (restored afterwards; its ``markdown_table`` renders
    ``frame.to_string()``). Each call makes a fresh module, which a test
    may patch."""
    stubs: dict[str, types.ModuleType] = {name: types.ModuleType(name) for name in MISSING}
    helper = types.ModuleType("scripts.search_short_bias_overlay")
    helper.markdown_table = lambda frame: frame.to_string()  # type: ignore[attr-defined]
    stubs[helper.__name__] = helper
    for stub, module in stubs.items():
        if "." in stub:
            setattr(stubs["scripts"], stub.split(".", 1)[1], module)
    saved = {stub: sys.modules.get(stub) for stub in [*stubs, name]}
    path = list(sys.path)
    try:
        sys.modules.update(stubs)
        loader = SourceFileLoader(name, str(shared_seeds / SEED_FILE))
        spec = spec_from_loader(name, loader)
        assert spec is not None
        module = module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up while being made
        loader.exec_module(module)
    finally:
        sys.path[:] = path  # the seed puts its parent folder first on sys.path
        for stub, module_before in saved.items():
            if stub == name:
                continue
            if module_before is None:
                sys.modules.pop(stub, None)
            else:
                sys.modules[stub] = module_before
    return module


@pytest.fixture(scope="module")
def seed(shared_seeds: Path) -> Any:
    """Seed 001 as a module, its missing imports stubbed for the time of loading."""
    return load_seed(shared_seeds)


def load_closes(path: Path, name: str) -> pd.Series:
    """A freqtrade feather's closes, stamped at each bar's close (its open + 1h)."""
    frame = pd.read_feather(path)
    series = pd.Series(frame["close"].to_numpy(dtype=float), index=pd.DatetimeIndex(frame["date"]) + HOUR, name=name)
    return series


_MARKETS: dict[Path, dict[str, pd.DataFrame]] = {}


@pytest.fixture
def market(shared_data: Path) -> dict[str, pd.DataFrame]:
    """``perps``: BTC and ETH USD-M perpetuals (1h); ``stand_in``: the same
    with Binance spot ETH/USDT as a third column named ``SOL-USDT-SWAP``;
    both also as 4h bars built from the 1h ones. Read once per session."""
    return markets(shared_data)


def markets(shared_data: Path) -> dict[str, pd.DataFrame]:
    """The frames of the ``market`` fixture (read once per session)."""
    if shared_data not in _MARKETS:
        usdm = shared_data / "ohlcv" / "binance_usdm"
        perps = pd.concat(
            [
                load_closes(usdm / "BTC_USDT_USDT-1h-futures.feather", BTC),
                load_closes(usdm / "ETH_USDT_USDT-1h-futures.feather", ETH),
            ],
            axis=1,
        ).dropna()
        spot_eth = load_closes(shared_data / "ohlcv" / "binance_spot" / "ETH_USDT-1h.feather", SOL)
        stand_in = pd.concat([perps, spot_eth], axis=1, join="inner").dropna()
        out = {"perps/1h": perps, "stand_in/1h": stand_in}
        for key in list(out):
            out[key.replace("1h", "4h")] = overlay.resample_closes(out[key], "4h")
        _MARKETS[shared_data] = out
    return _MARKETS[shared_data]


def ours(param: Any) -> overlay.ShortOverlay:
    """The seed's parameter set as :class:`overlay.ShortOverlay`."""
    return overlay.ShortOverlay(**dataclasses.asdict(param))


def sample(seed: Any) -> list[Any]:
    """20 of the seed's 3,456 sets, drawn (seeded) within each of the 8
    (bar, family, short set) kinds: 3 of each of the first 4, 2 of the rest."""
    rng = np.random.default_rng(1)
    kinds: dict[tuple[Any, ...], list[Any]] = {}
    for param in seed.build_short_params():
        kinds.setdefault((param.bar, param.family, param.short_symbols), []).append(param)
    assert len(kinds) == 8
    chosen = []
    for k, group in enumerate(kinds.values()):
        picked = rng.choice(len(group), size=3 if k < 4 else 2, replace=False)
        chosen += [group[int(j)] for j in sorted(picked)]
    return chosen


# -- the grid --------------------------------------------------------------------------------------


def test_the_grid_is_the_seeds(seed: Any) -> None:
    theirs = seed.build_short_params()
    mine = overlay.short_grid("1h") + overlay.short_grid("4h")
    assert len(mine) == len(theirs) == 3456 and len(overlay.short_grid("4h")) == 1728
    fields = [f.name for f in dataclasses.fields(theirs[0])]
    assert [f.name for f in dataclasses.fields(overlay.ShortOverlay)][: len(fields)] == fields
    for a, b in zip(mine, theirs, strict=True):
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
        assert a.name == b.name
    assert len({p.name for p in mine}) == 3456
    renamed = overlay.short_grid("4h", short_symbols=("ETHUSDT", "SOLUSDT"), btc="BTCUSDT")
    assert renamed[1].short_symbols == ("ETHUSDT", "SOLUSDT") and renamed[1].btc == "BTCUSDT"
    assert renamed[1].name == mine[3456 // 2 + 1].name


def test_4h_bars_close_with_their_last_hour(market: dict[str, pd.DataFrame]) -> None:
    hours, four = market["perps/1h"], market["perps/4h"]
    assert (four.index.hour % 4 == 0).all() and (four.index.minute == 0).all()
    # each 4h close is the close of the 1h bar that closes at the same time
    pd.testing.assert_frame_equal(four, hours.loc[four.index], check_freq=False)
    # the data ends at 18:00 (the 17:00 bar's close): the 16:00-20:00 bar has not closed
    assert hours.index[-1] == pd.Timestamp("2026-02-19 18:00", tz="UTC")
    assert four.index[-1] == pd.Timestamp("2026-02-19 16:00", tz="UTC")
    assert len(four) == len(hours) // 4
    # hiding the hours after a 4h close changes nothing before it (causal)
    cut = overlay.resample_closes(hours.iloc[:1001], "4h")
    pd.testing.assert_frame_equal(cut, four.iloc[: len(cut)], check_freq=False)


# -- weights, equity, trades: the seed's functions on the same closes ------------------------------


def closes_for(market: dict[str, pd.DataFrame], which: str, param: Any) -> pd.DataFrame:
    frame = market[f"{which}/{param.bar}"]
    return frame[[BTC, *(s for s in param.short_symbols if s in frame.columns)]]


@pytest.mark.parametrize("which", ["perps", "stand_in"])
def test_weights_equity_and_trades_are_the_seeds(seed: Any, market: dict[str, pd.DataFrame], which: str) -> None:
    active = 0
    split = 0
    for param in sample(seed):
        closes = closes_for(market, which, param)
        theirs = seed.short_weights(closes, param)
        mine = overlay.overlay_weights(closes, ours(param))
        pd.testing.assert_frame_equal(mine, theirs, check_exact=True, check_freq=False)
        active += int((mine != 0.0).any(axis=1).sum())
        split += int(((mine < 0.0).sum(axis=1) == 2).sum())

        equity = overlay.equity_from_weights(closes, mine)
        np.testing.assert_allclose(equity.to_numpy(), seed.equity_from_weights(closes, theirs).to_numpy(), rtol=REL)
        assert overlay.weight_trade_stats(mine, closes, symbols=(ETH, SOL)) == pytest.approx(
            seed.trade_stats(theirs, closes), rel=REL
        )
    assert active > 1000  # the sample is not all flat
    if which == "stand_in":
        assert split > 100  # two symbols shorted at once, -0.5 each
    else:
        assert split == 0  # no SOL: the ETH+SOL sets short ETH alone


def test_the_seeds_figures_of_an_overlay_curve(seed: Any, market: dict[str, pd.DataFrame]) -> None:
    """Daily curve, metrics, horizons, months and worst windows of a few
    overlay curves: the seed's conventions from ``overlay``, the shared
    definitions from ``analytics``."""
    for param in sample(seed)[::4]:
        closes = closes_for(market, "stand_in", param)
        equity = overlay.equity_from_weights(closes, overlay.overlay_weights(closes, ours(param)))
        theirs_daily = seed.daily(equity)
        mine_daily = analytics.daily_equity(equity)
        np.testing.assert_array_equal(mine_daily.to_numpy(), theirs_daily.to_numpy())
        assert (mine_daily.index == theirs_daily.index).all()

        assert overlay.seed_metrics(mine_daily) == pytest.approx(seed.metrics(theirs_daily), rel=REL)
        assert overlay.horizon_returns(mine_daily) == pytest.approx(seed.horizon_return_fields(theirs_daily), rel=REL)
        rows = pd.DataFrame(seed.horizon_rows("x", "short_leg", theirs_daily)).set_index("horizon")
        table = overlay.seed_horizons(mine_daily)
        assert list(table.index) == list(rows.index)
        assert list(table["start"]) == list(rows["start"]) and list(table["end"]) == list(rows["end"])
        for column in ("total_return", "annualized_return", "max_drawdown", "calmar"):
            np.testing.assert_allclose(table[column].to_numpy(), rows[column].to_numpy(), rtol=REL)
        # analytics' horizons: the same total returns where the data covers them (not 3y: ~14 months)
        shared = analytics.horizon_metrics(mine_daily)
        for label in ("full", "1y", "6m", "3m"):
            assert shared.loc[label, "return"] == pytest.approx(rows.loc[label, "total_return"], rel=REL)
            assert shared.loc[label, "max_drawdown"] == pytest.approx(-rows.loc[label, "max_drawdown"], rel=REL)
        assert np.isnan(shared.loc["3y", "return"]) and rows.loc["3y", "start"] == rows.loc["full", "start"]

        monthly = seed.monthly_rows("x", "short_leg", theirs_daily)
        table = analytics.monthly_returns(mine_daily)
        flat = table[list(analytics.MONTHS)].stack().dropna()  # months with data
        keys = [f"{year}-{analytics.MONTHS.index(month) + 1:02d}" for year, month in flat.index]
        assert keys == list(monthly["month"])
        np.testing.assert_allclose(flat.to_numpy(), monthly["return"].to_numpy(), rtol=REL, atol=1e-15)

        worst = pd.DataFrame(seed.worst_rolling_rows("x", "short_leg", monthly)).set_index("window_months")
        shared_worst = analytics.worst_rolling(mine_daily, months=(6, 12))
        for window in worst.index:
            assert shared_worst.loc[window, "return"] == pytest.approx(worst.loc[window, "return"], rel=1e-10)
            assert shared_worst.loc[window, "end"][:7] == worst.loc[window, "end_month"]


def test_combine_and_the_qualification_are_the_seeds(
    seed: Any, market: dict[str, pd.DataFrame], shared_data: Path
) -> None:
    """The seed blends the overlay into a rotation strategy that was never
    provided; the base here is BTC held from its first spot close
    (2024-09-14, months before the overlay starts) and from the overlay's
    first day."""
    spot = load_closes(shared_data / "ohlcv" / "binance_spot" / "BTC_USDT-1h.feather", "btc")
    base_long = analytics.daily_equity(10_000.0 * spot / spot.iloc[0])
    param = next(p for p in sample(seed) if p.bar == "4h" and p.family == "btc_breakdown_symbol")
    closes = closes_for(market, "stand_in", param)
    short = analytics.daily_equity(overlay.equity_from_weights(closes, overlay.overlay_weights(closes, ours(param))))
    base_same = base_long[base_long.index >= short.index[0]]
    for base in (base_long, base_same):
        for allocation in (0.03, 0.05, 0.07, 0.10):
            theirs = seed.combine(base, short, allocation)
            mine = overlay.combine(base, short, allocation)
            assert (mine.index == theirs.index).all()
            np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=REL)
            held = base.loc[mine.index]
            assert overlay.recent_not_worse(mine, held) == seed.recent_not_worse(theirs, held)
    # starting together, combine is analytics.blend in money
    blend = analytics.blend({"base": base_same, "short": short}, {"base": 0.95, "short": 0.05}, capital=10_000.0)
    np.testing.assert_allclose(overlay.combine(base_same, short, 0.05).to_numpy(), blend.to_numpy(), rtol=REL)


# -- our own checks --------------------------------------------------------------------------------


def test_parameters_are_checked() -> None:
    good = overlay.short_grid("1h")[0]
    with pytest.raises(ValueError, match="family"):
        dataclasses.replace(good, family="btc_long")
    with pytest.raises(ValueError, match="bar '5x'"):
        dataclasses.replace(good, bar="5x")
    with pytest.raises(ValueError, match="btc_trend must be at least 1"):
        dataclasses.replace(good, btc_trend=0)
    with pytest.raises(ValueError, match="no column 'BTC'"):
        overlay.overlay_weights(pd.DataFrame({"ETH": [1.0, 2.0]}), dataclasses.replace(good, btc="BTC"))
    with pytest.raises(ValueError, match="allocation"):
        overlay.combine(pd.Series([1.0]), pd.Series([1.0]), 1.5)
