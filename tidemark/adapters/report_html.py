"""A self-contained HTML report of a run (no scripts, no external files).

Sections: metrics, equity and drawdown, price with entry/exit markers,
monthly returns, rejections by reason, the trade table. Built only from a
:class:`adapters.backtest.Result`, i.e. from the journal.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

W, H, PAD = 960, 220, 36
MAX_POINTS = 1500
MAX_TRADES = 500


def _scale(values: np.ndarray, lo: float, hi: float, size: int, invert: bool) -> np.ndarray:
    span = hi - lo if hi > lo else 1.0
    scaled = (values - lo) / span * (size - 2 * PAD)
    return (size - PAD - scaled) if invert else (PAD + scaled)


def _downsample(index: pd.DatetimeIndex, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = index.asi8.astype(float)
    if len(x) > MAX_POINTS:
        pick = np.linspace(0, len(x) - 1, MAX_POINTS).astype(int)
        return x[pick], values[pick]
    return x, values


def _line_chart(
    title: str, index: pd.DatetimeIndex, values: np.ndarray, color: str, markers: str = "", fmt: str = "{:,.2f}"
) -> str:
    if len(values) == 0:
        return f"<h2>{html.escape(title)}</h2><p>No data.</p>"
    x, y = _downsample(index, np.asarray(values, dtype=float))
    finite = y[np.isfinite(y)]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    px = _scale(x, float(x[0]), float(x[-1]), W, False)
    py = _scale(np.nan_to_num(y, nan=lo), lo, hi, H, True)
    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
    first = pd.Timestamp(int(x[0]), unit="ns", tz="UTC").strftime("%Y-%m-%d")
    last = pd.Timestamp(int(x[-1]), unit="ns", tz="UTC").strftime("%Y-%m-%d")
    return (
        f"<h2>{html.escape(title)}</h2><svg viewBox='0 0 {W} {H}' width='100%'>"
        f"<rect x='0' y='0' width='{W}' height='{H}' fill='#fafafa'/>"
        f"<polyline fill='none' stroke='{color}' stroke-width='1.3' points='{points}'/>{markers}"
        f"<text x='{PAD}' y='14' font-size='11'>{fmt.format(hi)}</text>"
        f"<text x='{PAD}' y='{H - 4}' font-size='11'>{fmt.format(lo)}</text>"
        f"<text x='{W - PAD}' y='{H - 4}' font-size='11' text-anchor='end'>{first} .. {last}</text></svg>"
    )


def _price_chart(result: Any) -> str:
    symbols = result.config.get("symbols") or []
    bars = result.bars.get(symbols[0]) if symbols else None
    if bars is None or not len(bars):
        return ""
    symbol = symbols[0]
    index, values = bars.index, bars["close"].to_numpy()  # at each bar's close time
    x, y = _downsample(index, values)
    lo, hi = float(np.nanmin(y)), float(np.nanmax(y))
    x0, x1 = float(x[0]), float(x[-1])
    marks = []
    trades = result.trades[result.trades["instrument"] == symbol] if len(result.trades) else result.trades
    for _, t in trades.head(MAX_TRADES).iterrows():
        for when, price, color, up in (
            (t["entry_time"], t["entry_price"], "#1a7f37", t["side"] == "long"),
            (t["exit_time"], t["exit_price"], "#cf222e", t["side"] != "long"),
        ):
            if when is None or pd.isna(when) or not math.isfinite(price):
                continue
            mx = float(_scale(np.array([float(pd.Timestamp(when).value)]), x0, x1, W, False)[0])
            my = float(_scale(np.array([price]), lo, hi, H, True)[0])
            tip = f"{my + 7:.1f}" if up else f"{my - 7:.1f}"
            marks.append(f"<polygon points='{mx - 4:.1f},{tip} {mx + 4:.1f},{tip} {mx:.1f},{my:.1f}' fill='{color}'/>")
    return _line_chart(f"{symbol} close with entries (green) and exits (red)", index, values, "#555", "".join(marks))


def _monthly_table(equity: pd.DataFrame) -> str:
    if len(equity) < 2:
        return ""
    month_end = equity["equity"].resample("ME").last().dropna()
    start = equity["equity"].iloc[0]
    rets = month_end.pct_change()
    rets.iloc[0] = month_end.iloc[0] / start - 1.0
    table = pd.DataFrame({"year": rets.index.year, "month": rets.index.month, "ret": rets.to_numpy()})
    pivot = table.pivot(index="year", columns="month", values="ret")
    head = "".join(f"<th>{m}</th>" for m in range(1, 13))
    rows = []
    for year, row in pivot.iterrows():
        cells = []
        for m in range(1, 13):
            v = row.get(m, np.nan)
            if pd.isna(v):
                cells.append("<td></td>")
            else:
                color = "#1a7f37" if v >= 0 else "#cf222e"
                cells.append(f"<td style='color:{color}'>{v * 100:.2f}%</td>")
        rows.append(f"<tr><th>{year}</th>{''.join(cells)}</tr>")
    return f"<h2>Monthly returns</h2><table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def _metrics_table(metrics: dict[str, Any]) -> str:
    rows = []
    for key in sorted(metrics):
        value = metrics[key]
        text = (
            f"{value:,.6g}"
            if isinstance(value, float) and math.isfinite(value)
            else ("n/a" if isinstance(value, float) else str(value))
        )
        rows.append(f"<tr><th>{html.escape(key)}</th><td>{text}</td></tr>")
    return "<h2>Metrics</h2><table>" + "".join(rows) + "</table>"


def _frame_table(frame: pd.DataFrame, title: str, limit: int) -> str:
    if not len(frame):
        return f"<h2>{html.escape(title)}</h2><p>None.</p>"
    shown = frame.head(limit)
    note = f"<p>First {limit} of {len(frame)}.</p>" if len(frame) > limit else ""
    return f"<h2>{html.escape(title)}</h2>{note}" + shown.to_html(
        index=False, float_format=lambda v: f"{v:,.4f}", border=0
    )


def render(result: Any) -> str:
    eq = result.equity
    parts = [
        f"<h1>tidemark run {html.escape(result.run_id)}</h1>",
        f"<p>Journal <code>{html.escape(str(result.journal))}</code>, {result.events} events, "
        f"chain head <code>{result.head}</code>.</p>",
        _metrics_table(result.metrics),
        _line_chart("Equity", eq.index, eq["equity"].to_numpy() if len(eq) else np.array([]), "#0969da"),
        _line_chart(
            "Drawdown",
            eq.index,
            (eq["drawdown"] * 100).to_numpy() if len(eq) else np.array([]),
            "#cf222e",
            fmt="{:.2f}%",
        ),
        _price_chart(result),
        _monthly_table(eq),
    ]
    reasons = result.rejections_by_reason()
    if reasons:
        parts.append(
            "<h2>Rejections by reason</h2><table>"
            + "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in reasons.items())
            + "</table>"
        )
    parts.append(_frame_table(result.trades, "Trades", MAX_TRADES))
    style = (
        "body{font-family:system-ui,sans-serif;margin:24px;max-width:1000px}table{border-collapse:collapse;font-size:12px}"
        "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}h2{margin-top:28px}"
    )
    title = f"tidemark {html.escape(result.run_id)}"
    head = f"<meta charset='utf-8'><title>{title}</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>"


def write_report(result: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(result), encoding="utf-8")
    return path
