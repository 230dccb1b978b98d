"""Seed 001's search, end to end: every short overlay of a grid, blended into a base curve.

:func:`overlay_search` evaluates each parameter set of
:mod:`.overlay`'s short overlay on the closes given, ranks the short legs,
blends the best ``top`` into a base equity curve at small allocations, keeps
the blends that lower the drawdown without giving up recent returns, and
returns seven tables and a Markdown report (:class:`OverlaySearch`;
:meth:`OverlaySearch.write` saves them). The tables have the seed's
columns, row order, sorting and selection rules, so its CSVs and ours can
be compared file by file (tests/adapters/research/test_overlay_search_seed001.py
runs the seed's own ``main()`` beside this). The seed blended into a
"rotation" strategy that was never provided; here the base is any equity
curve: a run's (``Result.from_journal(path).equity["equity"]``) or a
series. The seed's labels are kept: the base row's kind is
``base_rotation``, a blend's ``rotation_plus_btc_risk_short``.

The search
----------
1. Each parameter set: its target weights (:func:`.overlay.overlay_weights`)
   on the closes of its bar, of BTC and of the short symbols the closes
   have, on the times all of them have a close; its equity
   (:func:`.overlay.equity_from_weights`: 0.04 % of the weight changed, from
   10,000) as a daily curve. One ``short_leg`` row each: horizon returns,
   :func:`.overlay.seed_metrics`, weight turnover a year, bars with a short.
2. The short legs are ranked by their 1y, 6m and 3m total returns and then
   Calmar, highest first (ties keep the grid's order); the first ``top`` are
   the candidates.
3. Each candidate is blended into the base's daily curve
   (:func:`.overlay.combine`) at each allocation. A blend *qualifies* when
   its max drawdown is below the base's over the same days and its 1y, 6m
   and 3m returns are each at least the base's
   (:func:`.overlay.recent_not_worse`).
4. Selection: the qualified blends by max drawdown (lowest first), then
   Calmar, 1y, 6m, 3m return (highest first); blends equal in allocation,
   family, bar, short symbols, recent returns and drawdown are one (the
   first kept); the first five. Without any qualified blend: the three
   blends of lowest drawdown (then highest 1y, 6m, 3m return). The selected
   blends, their short legs and the base are marked ``selected``, and the
   selected short legs get their trade statistics
   (:func:`.overlay.weight_trade_stats`; other short legs show 0 trades).

Conventions are the seed's (:mod:`.overlay`'s module docstring): 365-day
years, drawdowns positive, 0.0 where a figure is undefined, a horizon
longer than the data is the whole curve.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tidemark.adapters.research import overlay
from tidemark.adapters.research.overlay import ShortOverlay

PREFIX = "overlay-mix"
ALLOCATIONS = (0.03, 0.05, 0.07, 0.10)
BASE_KIND = "base_rotation"
SHORT_KIND = "short_leg"
COMBO_KIND = "rotation_plus_btc_risk_short"
TABLES = ("total", "short_leg", "combo", "horizons", "monthly", "worst_rolling", "signal_definitions")
"""The seven tables, in the order of their files (``PREFIX-<name with dashes>.csv``)."""
RECENT = ("h1y_return", "h6m_return", "h3m_return")
WORST_WINDOWS = (6, 12)


class OverlaySearchError(ValueError):
    """Input the search cannot use (no closes for a bar, a base that does not overlap, ...)."""


# -- the result ------------------------------------------------------------------------------------


@dataclass
class OverlaySearch:
    """The seven tables of a search (the seed's CSVs) and its report.

    ``total``: the base, every short leg and every blend (one row each);
    ``short_leg``: the short legs ranked; ``combo``: the blends, qualified
    first, then by drawdown and 1y return; ``horizons``, ``monthly``,
    ``worst_rolling``: per curve (base, candidates, blends); and
    ``signal_definitions``: the selected short legs' rules in words.
    """

    total: pd.DataFrame
    short_leg: pd.DataFrame
    combo: pd.DataFrame
    horizons: pd.DataFrame
    monthly: pd.DataFrame
    worst_rolling: pd.DataFrame
    signal_definitions: pd.DataFrame
    base_name: str

    @property
    def selected(self) -> pd.DataFrame:
        """The rows of ``total`` marked selected (the base, the selected
        blends and their short legs)."""
        return self.total[self.total["selected"] == "yes"]

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in TABLES}

    @staticmethod
    def paths(out_dir: str | os.PathLike[str], prefix: str = PREFIX) -> list[Path]:
        """Where :meth:`write` puts the seven CSVs and then the report."""
        folder = Path(out_dir)
        files = [f"{prefix}-{name.replace('_', '-')}.csv" for name in TABLES] + [f"{prefix}-report.md"]
        return [folder / file for file in files]

    def report(
        self,
        command: str = "",
        paths: Iterable[str | os.PathLike[str]] = (),
        table: Callable[[pd.DataFrame], str] | None = None,
    ) -> str:
        """The seed's Markdown report: the command, the files, the selected
        rows, the qualified ones among them, the signal definitions, and the
        horizons, worst windows and last 96 monthly rows of the selected
        curves. ``table`` renders a frame (default :func:`markdown_table`)."""
        render = table or markdown_table
        selected = self.selected
        names = set(selected["name"])
        server = selected[selected["server_readonly_candidate"] == "yes"]
        return "\n".join(
            [
                "# Short Overlay Mix",
                "",
                f"Run command: `{command}`",
                "",
                "Output files:",
                *[f"- `{Path(path)}`" for path in paths],
                "",
                "Objective: add a small short overlay to the existing rotation long strategy and keep the recent "
                "1y/6m/3m total returns no worse than the rotation base while reducing max drawdown.",
                "Cost model: 0.04% one-way taker fee on absolute short-overlay notional turnover. "
                "Rotation-risk keeps its existing cost model.",
                "",
                "## Result",
                "",
                render(selected),
                "",
                "## Server read-only signal candidates",
                "",
                render(server),
                "",
                "## Signal definitions",
                "",
                render(self.signal_definitions),
                "",
                "## Horizons",
                "",
                render(self.horizons[self.horizons["name"].isin(names)]),
                "",
                "## Worst rolling 6/12m",
                "",
                render(self.worst_rolling[self.worst_rolling["name"].isin(names)]),
                "",
                "## Recent monthly returns",
                "",
                render(self.monthly[self.monthly["name"].isin(names)].tail(96)),
                "",
            ]
        )

    def write(
        self,
        out_dir: str | os.PathLike[str],
        prefix: str = PREFIX,
        command: str = "",
        table: Callable[[pd.DataFrame], str] | None = None,
    ) -> list[Path]:
        """Write the seven CSVs (no index) and the report into ``out_dir``
        (made if missing); the paths written, report last."""
        paths = self.paths(out_dir, prefix)
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        for path, frame in zip(paths, self.tables().values(), strict=False):
            frame.to_csv(path, index=False)
        paths[-1].write_text(self.report(command, paths, table), encoding="utf-8")
        return paths


def markdown_table(frame: pd.DataFrame) -> str:
    """A frame as a Markdown table (floats to 6 significant digits; ``_no rows_`` when empty)."""
    if frame.empty:
        return "_no rows_"
    columns = [str(c) for c in frame.columns]

    def cell(value: Any) -> str:
        if isinstance(value, float):
            text = "" if math.isnan(value) else f"{value:.6g}"
        else:
            text = str(value)
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


# -- inputs ----------------------------------------------------------------------------------------


def closes_by_bar(data: Mapping[Any, Any], bars: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """The closes of each bar size as one frame (a column per symbol).

    ``data`` is either ``{bar: frame of closes}`` (a column per symbol), or
    the seed's ``{(symbol, bar): frame with a close column, or a series of
    closes}``; every index a time (the bar's close time). Columns of the same
    bar are aligned on the union of their times (missing closes NaN).
    ``bars``: build these bar sizes too, causally from the finest bar given
    (:func:`.overlay.resample_closes`), where ``data`` lacks them.
    """
    out: dict[str, pd.DataFrame] = {}
    pairs: dict[str, dict[str, pd.Series]] = {}
    for key, value in data.items():
        if isinstance(key, tuple) and len(key) == 2:
            symbol, bar = (str(k) for k in key)
            series = value["close"] if isinstance(value, pd.DataFrame) else value
            if not isinstance(series, pd.Series):
                raise OverlaySearchError(f"closes of {key}: expected a frame with a close column or a series")
            pairs.setdefault(bar, {})[symbol] = series.astype(float)
        elif isinstance(key, str) and isinstance(value, pd.DataFrame):
            out[key] = value.astype(float)
        else:
            raise OverlaySearchError(
                f"closes: expected {{bar: frame of closes}} or {{(symbol, bar): frame}}, got a key {key!r}"
            )
    for bar, columns in pairs.items():
        if bar in out:
            raise OverlaySearchError(f"closes of {bar} given twice (as a frame and per symbol)")
        out[bar] = pd.DataFrame(columns)
    for bar, frame in out.items():
        overlay.bars_a_day(bar)
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise OverlaySearchError(f"closes of {bar}: the index must be times (each bar's close)")
    for bar in bars or ():
        if bar in out:
            continue
        if not out:
            raise OverlaySearchError("closes: none given")
        finest = min(out, key=pd.Timedelta)
        if pd.Timedelta(bar) <= pd.Timedelta(finest):
            raise OverlaySearchError(f"closes of {bar}: not given, and not coarser than the finest given ({finest})")
        built = overlay.resample_closes(out[finest], bar)
        assert isinstance(built, pd.DataFrame)
        out[bar] = built
    return out


def default_params(
    closes: Mapping[str, pd.DataFrame], btc: str = overlay.BTC, short_symbols: Sequence[str] | None = None
) -> list[ShortOverlay]:
    """The seed's grid (:func:`.overlay.short_grid`) for each bar of
    ``closes`` that has one (1h, 4h), in that order. ``short_symbols``
    (default the seed's ETH and SOL swaps) name the shortable columns; with
    a single one the grid's two short sets are the same, and kept once."""
    symbols = tuple(short_symbols) if short_symbols is not None else overlay.SHORTABLE
    params: list[ShortOverlay] = []
    seen: set[ShortOverlay] = set()
    for bar in ("1h", "4h"):
        if bar in closes:
            for param in overlay.short_grid(bar, symbols, btc):
                if param not in seen:
                    seen.add(param)
                    params.append(param)
    if not params:
        raise OverlaySearchError(f"the seed's grid has bars 1h and 4h; the closes have {sorted(closes)}")
    return params


# -- one parameter set -----------------------------------------------------------------------------


def _leg_closes(closes: Mapping[str, pd.DataFrame], param: ShortOverlay) -> pd.DataFrame:
    """BTC and the short symbols the closes of ``param.bar`` have, where all have a close."""
    if param.bar not in closes:
        raise OverlaySearchError(f"{param.name}: no closes of {param.bar} (have {sorted(closes)})")
    frame = closes[param.bar]
    if param.btc not in frame.columns:
        raise OverlaySearchError(f"{param.name}: no closes of {param.btc} at {param.bar}")
    shorts = [s for s in param.short_symbols if s in frame.columns and s != param.btc]
    if not shorts:
        raise OverlaySearchError(f"{param.name}: none of {list(param.short_symbols)} among the {param.bar} closes")
    legs = frame[[param.btc, *shorts]].dropna()
    if len(legs) < 2:
        raise OverlaySearchError(f"{param.name}: fewer than two {param.bar} closes where all its symbols have one")
    return legs


def _horizon_fields(daily: pd.Series) -> dict[str, float]:
    return overlay.horizon_returns(daily)


def _years(curve: pd.Series) -> float:
    """From the first point to the last, in 365-day years (seconds / 86,400 / 365, the seed's rounding)."""
    return (curve.index[-1] - curve.index[0]).total_seconds() / 86_400 / overlay.DAYS_A_YEAR


def evaluate(closes: Mapping[str, pd.DataFrame], param: ShortOverlay) -> tuple[dict[str, Any], pd.Series]:
    """One parameter set's ``short_leg`` row and daily equity."""
    legs = _leg_closes(closes, param)
    weights = overlay.overlay_weights(legs, param)
    equity = overlay.equity_from_weights(legs, weights)
    daily = overlay.daily(equity)
    years = _years(equity)
    shorts = weights.to_numpy()[:, 1:]
    row = {
        "name": param.name,
        "kind": SHORT_KIND,
        "family": param.family,
        "base": "",
        "short_leg": "",
        "allocation": 1.0,
        "bar": param.bar,
        "short_symbols": ",".join(param.short_symbols),
        "server_readonly_candidate": "no",
        "selected": "no",
        "years": years,
        "turnover_per_year": float(np.abs(np.diff(weights.to_numpy(), axis=0)).sum() / years),
        "active_bars": int((shorts != 0.0).any(axis=1).sum()),
        **_horizon_fields(daily),
        **overlay.seed_metrics(daily),
        "trades": 0,
        "win_rate": 0.0,
        "profit_factor": 0.0,
    }
    return row, daily


def definition(param: ShortOverlay) -> str:
    """The parameter set's rule in words (the seed's signal definition)."""
    text = (
        f"On {param.bar}, BTC close below SMA({param.btc_trend}), "
        f"BTC {param.btc_lookback}-bar momentum <= {param.btc_max_momentum:.3f} "
        f"and <= -{param.btc_min_drop:.3f}, annualized BTC vol({param.vol_lookback}) >= {param.min_btc_vol:.4f}; "
        f"short {','.join(param.short_symbols)}"
    )
    if param.family == "btc_breakdown_symbol":
        return (
            text + f" only when each symbol is below SMA({param.symbol_trend}) and momentum <= "
            f"{param.symbol_max_momentum:.3f}."
        )
    return text + "."


_WORKER_CLOSES: Mapping[str, pd.DataFrame] = {}


def _init_worker(closes: Mapping[str, pd.DataFrame]) -> None:
    global _WORKER_CLOSES
    _WORKER_CLOSES = closes


def _evaluate_chunk(params: list[ShortOverlay]) -> list[tuple[dict[str, Any], pd.Series]]:
    return [evaluate(_WORKER_CLOSES, param) for param in params]


def _evaluate_all(
    closes: Mapping[str, pd.DataFrame], params: Sequence[ShortOverlay], workers: int
) -> list[tuple[dict[str, Any], pd.Series]]:
    if workers <= 1 or len(params) < 2:
        return [evaluate(closes, param) for param in params]
    size = max(1, math.ceil(len(params) / (workers * 4)))
    chunks = [list(params[k : k + size]) for k in range(0, len(params), size)]
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(dict(closes),)) as pool:
        return [item for chunk in pool.map(_evaluate_chunk, chunks) for item in chunk]


# -- per-curve tables ------------------------------------------------------------------------------


def _horizon_rows(name: str, kind: str, daily: pd.Series) -> list[dict[str, Any]]:
    table = overlay.seed_horizons(daily)
    return [{"name": name, "kind": kind, "horizon": label, **row} for label, row in table.iterrows()]


def _monthly_rows(name: str, kind: str, daily: pd.Series) -> pd.DataFrame:
    """Month-end equity (the last value of each calendar month) and the
    month's return from the month before's end (the first month: from the
    curve's first value)."""
    ends = daily.resample("ME").last()
    end_equity = ends.to_numpy(dtype=float)
    start_equity = np.r_[float(daily.iloc[0]), end_equity[:-1]]
    return pd.DataFrame(
        {
            "name": name,
            "kind": kind,
            "month": pd.DatetimeIndex(ends.index).strftime("%Y-%m"),
            "start_equity": start_equity,
            "end_equity": end_equity,
            "return": end_equity / start_equity - 1.0,
        }
    )


def _worst_rows(name: str, kind: str, monthly: pd.DataFrame) -> list[dict[str, Any]]:
    """The worst compounded return over each window of ``WORST_WINDOWS``
    consecutive months, with the window's last month (the first such
    window on a tie); windows longer than the data are left out."""
    growth = 1.0 + monthly["return"].to_numpy(dtype=float)
    rows = []
    for window in WORST_WINDOWS:
        if len(growth) < window:
            continue
        returns = np.lib.stride_tricks.sliding_window_view(growth, window).prod(axis=1) - 1.0
        worst = int(np.nanargmin(returns))
        rows.append(
            {
                "name": name,
                "kind": kind,
                "window_months": window,
                "end_month": monthly["month"].iloc[worst + window - 1],
                "return": float(returns[worst]),
            }
        )
    return rows


# -- the search ------------------------------------------------------------------------------------


def overlay_search(
    closes: Mapping[Any, Any],
    base: pd.Series,
    base_name: str,
    base_stats: Mapping[str, Any],
    params: Sequence[ShortOverlay] | None = None,
    top: int = 20,
    allocations: Sequence[float] = ALLOCATIONS,
    workers: int = 1,
) -> OverlaySearch:
    """Seed 001's search (the module docstring): every parameter set's short
    leg, the best ``top`` blended into ``base`` at each allocation, the
    qualified blends selected.

    Parameters
    ----------
    closes
        ``{bar: frame of closes}`` or ``{(symbol, bar): frame}``
        (:func:`closes_by_bar`); the bars the parameter sets use (a bar
        missing is built from a finer one).
    base
        The base equity curve, indexed by time (any bar; it is taken daily).
    base_name, base_stats
        The base's name and its ``trades``, ``win_rate`` and
        ``profit_factor`` (other keys become columns too); a blend's
        ``trades`` is the base's plus the overlay's.
    params
        The parameter sets (default :func:`default_params`: the seed's 3,456
        with its symbol names); a set given twice is run once, two
        different sets of the same name are refused.
    top
        How many of the ranked short legs are blended.
    allocations
        The fractions of capital in the overlay.
    workers
        Processes evaluating the parameter sets (1: this process); the
        result does not depend on it.
    """
    if top < 1:
        raise OverlaySearchError(f"top must be at least 1, was {top}")
    for allocation in allocations:
        if not 0.0 < allocation <= 1.0:
            raise OverlaySearchError(f"allocation {allocation}: must be in (0, 1]")
    if "trades" not in base_stats:
        raise OverlaySearchError("base_stats needs 'trades' (the base's trade count)")
    by_bar = closes_by_bar(closes)
    if params is not None:
        wanted = sorted({p.bar for p in params})
    else:  # the seed's bars that are given or can be built from a finer one
        finest = min((pd.Timedelta(bar) for bar in by_bar), default=None)
        wanted = [bar for bar in ("1h", "4h") if bar in by_bar or (finest is not None and pd.Timedelta(bar) > finest)]
    by_bar = closes_by_bar(by_bar, wanted)
    if params is None:
        params = default_params(by_bar)
    params = list(dict.fromkeys(params))  # a set given twice (short_grid with one short symbol) is run once
    if not params:
        raise OverlaySearchError("no parameter sets")
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise OverlaySearchError(f"parameter sets named twice: {twice[:3]}")

    base_daily = overlay.daily(base)
    if len(base_daily) < 2:
        raise OverlaySearchError(f"the base curve {base_name!r} covers fewer than two days")
    first = min(frame.index.min() for frame in by_bar.values()).floor("D")
    last = max(frame.index.max() for frame in by_bar.values()).floor("D")
    if ((base_daily.index >= first) & (base_daily.index <= last)).sum() < 2:
        raise OverlaySearchError(
            f"the base curve {base_name!r} ({_span(base_daily.index)}) shares fewer than two days with the closes "
            f"({first:%Y-%m-%d} .. {last:%Y-%m-%d})"
        )
    base_row = {
        "name": base_name,
        "kind": BASE_KIND,
        "base": "",
        "short_leg": "",
        "allocation": 0.0,
        "server_readonly_candidate": "no",
        "selected": "yes",
        "years": _years(base_daily),
        **_horizon_fields(base_daily),
        **overlay.seed_metrics(base_daily),
        **base_stats,
    }
    totals: list[dict[str, Any]] = [base_row]
    horizon_rows = _horizon_rows(base_name, BASE_KIND, base_daily)
    monthly_frames = [_monthly_rows(base_name, BASE_KIND, base_daily)]
    worst_rows = _worst_rows(base_name, BASE_KIND, monthly_frames[0])

    evaluated = _evaluate_all(by_bar, params, workers)
    short_rows = [row for row, _ in evaluated]
    short_daily = {row["name"]: daily for row, daily in evaluated}
    by_name = dict(zip(names, params, strict=True))
    short_frame = pd.DataFrame(short_rows).sort_values(["h1y_return", "h6m_return", "h3m_return", "calmar"],
                                                        ascending=[False] * 4)  # fmt: skip
    totals.extend(short_rows)

    short_stats: dict[str, dict[str, Any]] = {}
    for _, leg in short_frame.head(top).iterrows():
        leg_name = str(leg["name"])
        param = by_name[leg_name]
        legs = _leg_closes(by_bar, param)
        stats = overlay.weight_trade_stats(overlay.overlay_weights(legs, param), legs, symbols=param.short_symbols)
        short_stats[leg_name] = stats
        short = short_daily[leg_name]
        horizon_rows += _horizon_rows(leg_name, SHORT_KIND, short)
        monthly_frames.append(_monthly_rows(leg_name, SHORT_KIND, short))
        worst_rows += _worst_rows(leg_name, SHORT_KIND, monthly_frames[-1])
        for allocation in allocations:
            combo_name = f"{base_name}+{allocation:.0%}-{leg_name}"
            combo = overlay.combine(base_daily, short, allocation)
            if len(combo) < 2:
                raise OverlaySearchError(
                    f"the base curve {base_name!r} ({_span(base_daily.index)}) shares fewer than two days with "
                    f"{leg_name} ({_span(short.index)})"
                )
            mine = overlay.seed_metrics(combo)
            held = base_daily.loc[combo.index]
            theirs = overlay.seed_metrics(held)
            qualifies = mine["max_drawdown"] < theirs["max_drawdown"] and overlay.recent_not_worse(combo, held)
            flag = "yes" if qualifies else "no"
            totals.append(
                {
                    "name": combo_name,
                    "kind": COMBO_KIND,
                    "family": param.family,
                    "base": base_name,
                    "short_leg": leg_name,
                    "allocation": allocation,
                    "bar": param.bar,
                    "short_symbols": ",".join(param.short_symbols),
                    "server_readonly_candidate": flag,
                    "selected": flag,
                    "years": _years(combo),
                    "annualized_return_delta_vs_base": mine["annualized_return"] - theirs["annualized_return"],
                    "max_drawdown_delta_vs_base": mine["max_drawdown"] - theirs["max_drawdown"],
                    **_horizon_fields(combo),
                    **mine,
                    "trades": int(base_stats["trades"]) + int(stats["trades"]),
                    "win_rate": stats["win_rate"],
                    "profit_factor": stats["profit_factor"],
                    "overlay_trades": stats["trades"],
                    "overlay_win_rate": stats["win_rate"],
                    "overlay_profit_factor": stats["profit_factor"],
                }
            )
            horizon_rows += _horizon_rows(combo_name, COMBO_KIND, combo)
            monthly_frames.append(_monthly_rows(combo_name, COMBO_KIND, combo))
            worst_rows += _worst_rows(combo_name, COMBO_KIND, monthly_frames[-1])

    total = pd.DataFrame(totals)
    combos = total[total["kind"] == COMBO_KIND].copy()
    total.loc[total["kind"] != BASE_KIND, "selected"] = "no"
    chosen = _select(combos)
    total.loc[total["name"].isin(set(chosen["name"])), "selected"] = "yes"
    chosen_legs = set(total.loc[total["selected"] == "yes", "short_leg"]) - {""}
    total.loc[total["name"].isin(chosen_legs), "selected"] = "yes"
    for leg_name in chosen_legs:
        for key, value in short_stats.get(leg_name, {}).items():
            total.loc[total["name"] == leg_name, key] = value

    definitions = pd.DataFrame([{"short_leg": p.name, "definition": definition(p)} for p in params])
    combo_table = combos.sort_values(["server_readonly_candidate", "max_drawdown", "h1y_return"],
                                     ascending=[False, True, False])  # fmt: skip
    return OverlaySearch(
        total=total,
        short_leg=short_frame,
        combo=combo_table,
        horizons=pd.DataFrame(horizon_rows),
        monthly=pd.concat(monthly_frames, ignore_index=True),
        worst_rolling=pd.DataFrame(worst_rows),
        signal_definitions=definitions[definitions["short_leg"].isin(chosen_legs)],
        base_name=base_name,
    )


def _span(index: pd.Index) -> str:
    return f"{index[0]:%Y-%m-%d} .. {index[-1]:%Y-%m-%d}"


def _select(combos: pd.DataFrame) -> pd.DataFrame:
    """Step 4 of the module docstring: the selected blends."""
    qualified = combos[combos["server_readonly_candidate"] == "yes"].sort_values(
        ["max_drawdown", "calmar", *RECENT], ascending=[True, False, False, False, False]
    )
    same = ["allocation", "family", "bar", "short_symbols", *RECENT, "max_drawdown"]
    chosen = qualified.drop_duplicates(subset=same).head(5)
    if chosen.empty:
        chosen = combos.sort_values(["max_drawdown", *RECENT], ascending=[True, False, False, False]).head(3)
    return chosen
