"""What the report shows, as one JSON-ready dict, read from a Result.

Only the Result's frames, metrics, config and header are read (the
journal's projections), never the journal or live actors, so any journal
can be reported on and the report cannot change a journal.

Numeric arrays travel as base64 of little-endian float64 (``{"f8": ...}``):
exact (the drawdown the page draws is the float the metric was computed
from), NaN-preserving, and 4/3 of the raw size instead of JSON's ~2.5x.
Times are seconds since the epoch (UTC) as float64.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tidemark.adapters.report.sampling import aggregate_ohlc, m4_indexes
from tidemark.adapters.report.stats import GROUPS, compute_stats
from tidemark.core.text import plural

DEFAULT_MAX_POINTS = 40_000
"""Buckets per series in the file (candles per symbol; M4 buckets of the
equity panes). A run with fewer bars is embedded whole."""


def f8(values: Any) -> dict[str, str]:
    array = np.ascontiguousarray(np.asarray(values, dtype="<f8"))
    return {"f8": base64.b64encode(array.tobytes()).decode("ascii")}


def decode_f8(blob: dict[str, str]) -> np.ndarray:
    """The inverse of :func:`f8` (for tests and tools)."""
    return np.frombuffer(base64.b64decode(blob["f8"]), dtype="<f8")


def seconds(times: Any) -> np.ndarray:
    """UTC times (a DatetimeIndex, datetime Series or int64 ns) as float
    seconds; NaT as NaN."""
    if isinstance(times, pd.DatetimeIndex | pd.Series) and str(times.dtype).startswith("datetime64"):
        index = pd.DatetimeIndex(times)
        ns = index.as_unit("ns").asi8.astype(np.float64)
        ns[np.asarray(index.isna())] = np.nan
        return ns / 1e9
    ns = np.asarray(times, dtype=np.float64)
    return ns / 1e9


# -- warnings and config ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunWarning:
    level: str  # "warn" | "info"
    text: str


def _fingerprints(result: Any) -> dict[str, Any]:
    try:
        prints = json.loads(result.header.fingerprints or "{}")
    except (AttributeError, ValueError):
        return {}
    return prints if isinstance(prints, dict) else {}


def run_warnings(result: Any) -> list[RunWarning]:
    """What a reader must know before trusting the figures: the run's own
    warnings (:func:`tidemark.journal.warnings.run_warnings`), then trades
    still open at the end."""
    out = [RunWarning("warn", text) for text in result.warnings]
    open_trades = result.metrics.get("open_trades")
    if open_trades:
        out.append(
            RunWarning("info", f"{plural(int(open_trades), 'trade')} still open at the end (valued at the last close).")
        )
    return out


def _fmt_num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.6g}" if math.isfinite(value) else "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _duration(ns: int) -> str:
    """1h, 15m, 1d, 30s; else pandas' text."""
    for unit, size in (("d", 86_400 * 10**9), ("h", 3_600 * 10**9), ("m", 60 * 10**9), ("s", 10**9)):
        if ns >= size and ns % size == 0:
            return f"{ns // size}{unit}"
    return str(pd.Timedelta(ns))


def config_rows(result: Any) -> list[list[str]]:
    """The run's set-up, as (label, value) rows for the top of the report."""
    c = result.config
    cur = str(c.get("currency") or "USD")
    prints = _fingerprints(result)
    rows: list[list[str]] = []
    files = []
    for name in c.get("data") or []:
        info = next((v for v in prints.values() if isinstance(v, dict) and v.get("file") == name), {})
        rows_text = f", {plural(int(info['rows']), 'row', grouped=True)}" if "rows" in info else ""
        digest = f", sha256 {str(info['sha256'])[:12]}…" if info.get("sha256") else ""
        files.append(f"{name}{rows_text}{digest}")
    rows.append(["Data", "; ".join(files) or "–"])
    eq = result.equity
    if len(eq):
        steps = plural(len(eq), "step", grouped=True)
        rows.append(["Period", f"{eq.index[0]:%Y-%m-%d %H:%M} → {eq.index[-1]:%Y-%m-%d %H:%M} UTC ({steps})"])
    intervals = sorted(
        {int(info["interval_ns"]) for info in prints.values() if isinstance(info, dict) and info.get("interval_ns")}
    )
    timeframe = c.get("timeframe") or ", ".join(_duration(i) for i in intervals)
    rows.append(["Timeframe", timeframe or "–"])
    rows.append(["Symbols", ", ".join(c.get("symbols") or []) or "–"])
    for spec in c.get("strategies") or []:
        params = spec.get("params") or {}
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(params.items())) or "defaults"
        rows.append([f"Strategy {spec.get('id', '')}", f"{spec.get('origin') or spec.get('strategy')} ({shown})"])
    rows.append(["Initial cash", f"{_fmt_num(float(c.get('initial_cash', 0.0)))} {cur}"])
    lev = c.get("leverage")
    rows.append(["Leverage", f"{_fmt_num(lev)}× ({c.get('margin_mode', '')})" if lev else "none (cash account)"])
    fees = []
    for key, label in (
        ("commission_bps", "commission"),
        ("maker_bps", "maker"),
        ("taker_bps", "taker"),
    ):
        if c.get(key) is not None:
            fees.append(f"{label} {_fmt_num(c[key])} bps")
    if c.get("commission_per_contract") is not None:
        fees.append(f"{_fmt_num(c['commission_per_contract'])} {cur} per contract")
    if c.get("commission_fixed"):
        fees.append(f"{_fmt_num(c['commission_fixed'])} {cur} per fill")
    rows.append(["Fees", ", ".join(fees) or "none configured"])
    slip = c.get("slippage")
    if isinstance(slip, dict) and slip:
        slip_text = ", ".join(f"{k}={v}" for k, v in sorted(slip.items()) if v not in (None, ""))
    else:
        slip_text = f"{_fmt_num(c.get('slippage_bps', 0.0))} bps (fixed)"
    rows.append(["Slippage", slip_text])
    fill = str(c.get("fill_model", ""))
    if c.get("latency_bars"):
        fill += f", latency {plural(int(c['latency_bars']), 'bar')}"
    if c.get("participation"):
        fill += f", participation {c['participation']}"
    if c.get("fill_probability") is not None:
        fill += f", fill probability {c['fill_probability']}"
    rows.append(["Fill model", fill])
    sizing = c.get("sizing") or {}
    if sizing:
        rows.append(["Sizing", f"{sizing.get('type', '')} {_fmt_num(sizing.get('value'))}"])
    funding = c.get("funding") or {}
    if funding.get("enabled"):
        rows.append(
            [
                "Funding",
                f"every {funding.get('interval') or '–'}, rates {', '.join(funding.get('data') or []) or '–'}, "
                f"marks {', '.join(funding.get('marks') or []) or '–'}, fallback {funding.get('fallback')}",
            ]
        )
    rows.append(["Data repair", str(c.get("repair", "none"))])
    rows.append(["Seed", str(c.get("seed", 0))])
    return rows


# -- metrics --------------------------------------------------------------------------------------


def _fmt_stat(label: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or value is pd.NaT:
        return "n/a"
    if isinstance(value, pd.Timedelta):
        return str(value)
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if "[%]" in label:
        return f"{float(value):,.2f} %"
    if label.endswith("]"):  # money
        unit = label[label.rindex("[") + 1 : -1]
        return f"{float(value):,.2f} {unit}"
    return f"{float(value):,.3f}"


def metric_groups(stats: pd.Series, currency: str) -> list[dict[str, Any]]:
    out = []
    for group, labels in GROUPS.items():
        rows = []
        for template in labels:
            label = template.format(cur=currency)
            if label in stats.index:
                rows.append([label, _fmt_stat(label, stats[label])])
        out.append({"group": group, "rows": rows})
    return out


def monthly_returns(equity: pd.DataFrame) -> dict[str, Any] | None:
    """Each calendar month's return (a fraction), by year: {"years": [...],
    "rows": [[12 values or None], ...]}."""
    if len(equity) < 2:
        return None
    month_end = equity["equity"].resample("ME").last().dropna()
    if not len(month_end):
        return None
    rets = month_end.pct_change()
    rets.iloc[0] = month_end.iloc[0] / equity["equity"].iloc[0] - 1.0
    index = pd.DatetimeIndex(rets.index)
    years = sorted({int(y) for y in index.year})
    rows: list[list[float | None]] = [[None] * 12 for _ in years]
    for year, month, value in zip(index.year, index.month, rets.to_numpy(dtype=float), strict=True):
        if math.isfinite(value):
            rows[years.index(int(year))][int(month) - 1] = float(value)
    return {"years": years, "rows": rows}


# -- tables ---------------------------------------------------------------------------------------

# column kinds the page formats: num (decimals), int, time, dur, str, bool, pct (a fraction shown in %)
TRADE_COLUMNS = [
    ("strategy", "str"),
    ("instrument", "str"),
    ("side", "str"),
    ("size", "num"),
    ("entry_time", "time"),
    ("exit_time", "time"),
    ("entry_price", "num"),
    ("exit_price", "num"),
    ("pnl", "num"),
    ("gross_pnl", "num"),
    ("fees", "num"),
    ("currency", "str"),
    ("pnl_account", "num"),
    ("return_pct", "pct"),
    ("bars", "int"),
    ("duration", "dur"),
    ("mae", "num"),
    ("mfe", "num"),
    ("open", "bool"),
]
FILL_COLUMNS = [
    ("seq", "int"),
    ("exec_time", "time"),
    ("strategy", "str"),
    ("order_id", "str"),
    ("instrument", "str"),
    ("side", "str"),
    ("quantity", "num"),
    ("price", "num"),
    ("fee", "num"),
    ("fee_currency", "str"),
    ("liquidity", "str"),
    ("slippage", "num"),
    ("realized", "num"),
    ("currency", "str"),
]
ORDER_COLUMNS = [
    ("order_id", "str"),
    ("submitted", "time"),
    ("strategy", "str"),
    ("instrument", "str"),
    ("side", "str"),
    ("type", "str"),
    ("quantity", "num"),
    ("price", "num"),
    ("trigger_price", "num"),
    ("tif", "str"),
    ("status", "str"),
    ("filled", "num"),
    ("avg_price", "num"),
    ("reason", "str"),
]
REJECTION_COLUMNS = [
    ("seq", "int"),
    ("ts", "time"),
    ("source", "str"),
    ("strategy", "str"),
    ("order_id", "str"),
    ("instrument", "str"),
    ("reason", "str"),
    ("detail", "str"),
]
FUNDING_COLUMNS = [
    ("seq", "int"),
    ("ts", "time"),
    ("strategy", "str"),
    ("instrument", "str"),
    ("quantity", "num"),
    ("rate", "num"),
    ("mark", "num"),
    ("amount", "num"),
    ("source", "str"),
]


def table(frame: pd.DataFrame, columns: list[tuple[str, str]]) -> dict[str, Any]:
    """Every row of ``frame`` as columns: numbers and times as f8 blobs,
    strings as lists. Columns the frame lacks are left out."""
    out: dict[str, Any] = {"rows": len(frame), "columns": []}
    for name, kind in columns:
        if name not in frame.columns:
            continue
        col = frame[name]
        if kind == "time":
            if str(col.dtype).startswith("datetime64"):
                values: Any = f8(seconds(col))
            else:  # int ns
                values = f8(col.to_numpy(dtype=np.float64) / 1e9)
        elif kind == "dur":
            values = f8(pd.to_timedelta(col).dt.total_seconds().to_numpy(dtype=np.float64))
        elif kind in ("num", "int", "pct", "bool"):
            values = f8(pd.to_numeric(col, errors="coerce").astype(np.float64).to_numpy())
        else:
            values = strings(col)
        out["columns"].append({"name": name, "kind": kind, "values": values})
    return out


def strings(items: pd.Series | list[Any]) -> list[str] | dict[str, Any]:
    """A column of strings (missing values: ""): a plain list, or, when
    values repeat (side, status, instrument...), ``{"cats": [...] in order
    of first appearance, "codes": <base64 uint>}``."""
    column = pd.Series(items, dtype=object) if isinstance(items, list) else items.astype(object)
    texts = column.where(column.notna(), "").map(str) if len(column) else column
    codes, uniques = pd.factorize(texts, sort=False)
    cats = [str(u) for u in uniques]
    if len(cats) * 2 > len(texts) or not len(texts):
        return [str(t) for t in texts.tolist()]
    dtype = "<u1" if len(cats) <= 256 else "<u2" if len(cats) <= 65536 else "<u4"
    blob = base64.b64encode(codes.astype(dtype).tobytes()).decode("ascii")
    return {"cats": cats, "codes": blob, "dtype": dtype[1:]}


# -- panes ----------------------------------------------------------------------------------------


def price_panes(result: Any, max_points: int) -> list[dict[str, Any]]:
    fills = result.fills
    panes = []
    symbols = list(result.config.get("symbols") or []) or sorted(result.bars)
    for symbol in [*symbols, *sorted(set(result.bars) - set(symbols))]:
        bars = result.bars.get(symbol)
        if bars is None or not len(bars):
            continue
        interval = float(np.median(np.diff(bars.index.as_unit("ns").asi8)) / 1e9) if len(bars) > 1 else 0.0
        candles, merged = aggregate_ohlc(
            seconds(bars.index) - interval,  # drawn at their open time, where next-open fills happen
            bars["open"].to_numpy(),
            bars["high"].to_numpy(),
            bars["low"].to_numpy(),
            bars["close"].to_numpy(),
            bars["volume"].to_numpy(),
            max_points,
        )
        rows = np.arange(0)
        if len(fills):
            mine = fills.reset_index(drop=True)
            mine = mine[mine["instrument"] == symbol]
            rows = mine.sort_values(["exec_time", "seq"], kind="stable").index.to_numpy()
        panes.append(
            {
                "symbol": symbol,
                "bars": len(bars),
                "merged": merged,
                "interval": interval,
                "candles": {k: f8(v) for k, v in candles.items() if k != "count"},
                "fills": f8(rows),  # rows of the fills table, in time order
            }
        )
    return panes


def margin_series(result: Any) -> pd.DataFrame | None:
    """Margin figures over time when the run is margined: ``leverage``
    (gross exposure over equity) and, when the equity frame has it,
    ``margin``. None for a cash account with no derivatives.

    Reads ``result.equity["margin"]`` when the projections add it; derives
    leverage from ``exposure`` and ``equity`` meanwhile."""
    c = result.config
    eq = result.equity
    derivatives = any(spec.get("kind", "spot") != "spot" for spec in (c.get("instruments") or {}).values())
    margined = (
        c.get("account") == "margin"
        or (c.get("leverage") or 1.0) > 1.0
        or derivatives
        or "margin" in eq.columns
        or (c.get("funding") or {}).get("enabled")
    )
    if not margined or not len(eq) or "exposure" not in eq.columns:
        return None
    values = eq["equity"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        leverage = np.where(values > 0, eq["exposure"].to_numpy(dtype=float) / values, np.nan)
    out = pd.DataFrame({"leverage": leverage}, index=eq.index)
    if "margin" in eq.columns:
        out["margin"] = eq["margin"].to_numpy(dtype=float)
    return out


def equity_pane(result: Any, max_points: int) -> dict[str, Any]:
    eq = result.equity
    if not len(eq):
        return {"points": 0, "total": 0}
    series = {"equity": eq["equity"].to_numpy(dtype=float), "drawdown": eq["drawdown"].to_numpy(dtype=float)}
    margin = margin_series(result)
    if margin is not None:
        for name in margin.columns:
            series[name] = margin[name].to_numpy(dtype=float)
    keep = m4_indexes(list(series.values()), max_points)
    times = seconds(eq.index)
    return {
        "total": len(eq),
        "points": len(keep),
        "time": f8(times[keep]),
        **{name: f8(values[keep]) for name, values in series.items()},
    }


def position_pane(result: Any) -> dict[str, Any]:
    """Net quantity per instrument (summed over strategies), as steps at
    each position change, from the run's first to its last time."""
    pos = result.positions
    eq = result.equity
    if not len(pos):
        return {"time": f8([]), "symbols": [], "values": []}
    pos = pos.sort_values(["ts", "seq"], kind="stable")
    held: dict[tuple[str, str], float] = {}
    net: dict[str, float] = {}
    steps = []
    for ts, strategy, instrument, quantity in zip(
        pos["ts"].tolist(), pos["strategy"].tolist(), pos["instrument"].tolist(), pos["quantity"].tolist(), strict=True
    ):
        key = (str(strategy), str(instrument))
        net[key[1]] = net.get(key[1], 0.0) + float(quantity) - held.get(key, 0.0)
        held[key] = float(quantity)
        steps.append((int(ts), key[1], net[key[1]]))
    frame = pd.DataFrame(steps, columns=["ts", "instrument", "net"])
    wide = frame.pivot_table(index="ts", columns="instrument", values="net", aggfunc="last").ffill().fillna(0.0)
    times = wide.index.to_numpy(dtype=np.int64)
    start = int(eq.index[0].value) if len(eq) else int(times[0])
    end = int(eq.index[-1].value) if len(eq) else int(times[-1])
    t = np.concatenate(([min(start, int(times[0]))], times, [max(end, int(times[-1]))]))
    values = []
    for name in wide.columns:
        v = wide[name].to_numpy(dtype=float)
        values.append(f8(np.concatenate(([0.0], v, [v[-1]]))))
    return {"time": f8(t / 1e9), "symbols": [str(c) for c in wide.columns], "values": values}


def pnl_pane(result: Any) -> dict[str, Any]:
    """The closed trades, as rows of the trades table in exit-time order."""
    trades = result.trades.reset_index(drop=True)
    if len(trades):
        trades = trades[~trades["open"].astype(bool)].sort_values("exit_time", kind="stable")
    return {"rows": f8(trades.index.to_numpy() if len(trades) else [])}


def funding_pane(result: Any) -> dict[str, Any] | None:
    f = result.funding
    if not len(f) or "amount" not in f.columns:
        return None
    f = f.sort_values(["ts", "seq"], kind="stable")
    amount = f["amount"].to_numpy(dtype=float)
    return {
        "time": f8(f["ts"].to_numpy(dtype=np.float64) / 1e9),
        "amount": f8(amount),
        "cumulative": f8(np.cumsum(amount)),
    }


def build(result: Any, max_points: int = DEFAULT_MAX_POINTS) -> dict[str, Any]:
    """The report's data, JSON-ready."""
    currency = str(result.config.get("currency") or "USD")
    stats = compute_stats(result)
    strategies = [s.get("id", "") for s in result.config.get("strategies") or []]
    return {
        "title": f"tidemark · {', '.join(strategies) or 'run'} · {result.run_id}",
        "run": {
            "run_id": result.run_id,
            "journal": str(result.journal),
            "head": result.head,
            "events": result.events,
            "version": getattr(result.header, "package_version", ""),
            "mode": getattr(result.header, "mode", "backtest"),
        },
        "currency": currency,
        "config": config_rows(result),
        "source": [
            {"id": s.get("id", ""), "origin": s.get("origin", ""), "source": s.get("source", "")}
            for s in result.config.get("strategies") or []
        ],
        "warnings": [{"level": w.level, "text": w.text} for w in run_warnings(result)],
        "metrics": metric_groups(stats, currency),
        "monthly": monthly_returns(result.equity),
        "max_drawdown": float(result.metrics["max_drawdown"]),
        "max_points": max_points,
        "prices": price_panes(result, max_points),
        "equity": equity_pane(result, max_points),
        "position": position_pane(result),
        "pnl": pnl_pane(result),
        "funding": funding_pane(result),
        "tables": {
            "trades": table(result.trades, TRADE_COLUMNS),
            "orders": table(result.orders, ORDER_COLUMNS),
            "fills": table(result.fills, FILL_COLUMNS),
            "rejections": table(result.rejections, REJECTION_COLUMNS),
            "funding": table(result.funding, FUNDING_COLUMNS),
        },
    }
