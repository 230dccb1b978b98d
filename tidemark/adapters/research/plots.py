"""Plots of the research tables as self-contained HTML (inline SVG, no
script, nothing fetched): histograms of Monte Carlo outcomes with their
percentiles, equity curves of analysed runs and their blend, tables."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

WIDTH, HEIGHT, PAD = 640, 220, 40
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}svg{background:#fff;border:1px solid #eee;margin:6px 0}
.note{color:#666}
"""


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def table_html(frame: pd.DataFrame, formats: Mapping[str, Callable[[object], str]] | None = None) -> str:
    formats = formats or {}
    index_name = html.escape(str(frame.index.name or ""))
    head = f"<th>{index_name}</th>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for label, row in frame.iterrows():
        cells = "".join(f"<td>{html.escape(formats.get(str(c), _plain)(row[c]))}</td>" for c in frame.columns)
        rows.append(f"<tr><th>{html.escape(str(label))}</th>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _plain(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:,.4g}"
    return str(value)


def histogram_svg(
    values: np.ndarray, title: str, *, bins: int = 40, marks: Mapping[str, float] | None = None, unit: str = ""
) -> str:
    """A histogram of the finite ``values`` with vertical lines at ``marks``
    (label: value, e.g. percentiles). Each bar is a ``rect`` whose
    ``data-count`` is the number of values in its bin."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return f'<p class="note">{html.escape(title)}: no finite values</p>'
    low, high = float(finite.min()), float(finite.max())
    if high == low:
        high = low + (abs(low) or 1.0) * 1e-9
    counts, edges = np.histogram(finite, bins=bins, range=(low, high))
    top = int(counts.max()) or 1
    span = WIDTH - 2 * PAD
    x = lambda v: PAD + (v - low) / (high - low) * span  # noqa: E731
    y = lambda c: HEIGHT - PAD - c / top * (HEIGHT - 2 * PAD)  # noqa: E731
    width = span / bins
    parts = [
        f'<rect x="{x(edges[k]):.2f}" y="{y(int(c)):.2f}" width="{max(width - 1, 1):.2f}" '
        f'height="{HEIGHT - PAD - y(int(c)):.2f}" fill="#9ecae1" data-count="{int(c)}"/>'
        for k, c in enumerate(counts)
    ]
    for k, (label, value) in enumerate((marks or {}).items()):
        if math.isfinite(value) and low <= value <= high:
            px = x(value)
            parts.append(
                f'<line x1="{px:.2f}" x2="{px:.2f}" y1="{PAD / 2:.0f}" y2="{HEIGHT - PAD}" stroke="#d62728"/>'
                f'<text x="{px + 2:.2f}" y="{PAD / 2 + 10 + 12 * (k % 3):.0f}" font-size="10">'
                f"{html.escape(label)}</text>"
            )
    axis = (
        f'<text x="{PAD}" y="{HEIGHT - 12}" font-size="11">{html.escape(_short(low))}{html.escape(unit)}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 12}" font-size="11" text-anchor="end">'
        f"{html.escape(_short(high))}{html.escape(unit)}</text>"
    )
    return (
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{html.escape(title)}">'
        f'<text x="{PAD}" y="14" font-size="12" font-weight="bold">{html.escape(title)}</text>'
        f"{''.join(parts)}{axis}</svg>"
    )


def lines_svg(curves: Mapping[str, pd.Series], title: str, *, max_points: int = 2000) -> str:
    """Curves over time on one chart (each thinned to ``max_points``
    evenly spaced points, first and last kept), one ``polyline`` each."""
    shown = {name: curve.dropna() for name, curve in curves.items() if len(curve.dropna())}
    if not shown:
        return f'<p class="note">{html.escape(title)}: nothing to plot</p>'
    t0 = min(int(pd.Timestamp(c.index[0]).as_unit("ns").value) for c in shown.values())
    t1 = max(int(pd.Timestamp(c.index[-1]).as_unit("ns").value) for c in shown.values())
    v0 = min(float(c.min()) for c in shown.values())
    v1 = max(float(c.max()) for c in shown.values())
    t1, v1 = (t1 if t1 > t0 else t0 + 1), (v1 if v1 > v0 else v0 + 1e-9)
    parts, legend = [], []
    for k, (name, curve) in enumerate(shown.items()):
        keep = np.unique(np.linspace(0, len(curve) - 1, min(len(curve), max_points)).astype(int))
        times = pd.DatetimeIndex(curve.index).as_unit("ns").asi8[keep].astype(float)
        values = curve.to_numpy(dtype=float)[keep]
        xs = PAD + (times - t0) / (t1 - t0) * (WIDTH - 2 * PAD)
        ys = HEIGHT - PAD - (values - v0) / (v1 - v0) * (HEIGHT - 2 * PAD)
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys, strict=True))
        color = COLORS[k % len(COLORS)]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.2" points="{points}"/>')
        legend.append(
            f'<text x="{WIDTH - PAD}" y="{30 + 13 * k}" font-size="11" text-anchor="end" fill="{color}">'
            f"{html.escape(name)}</text>"
        )
    first, last = pd.Timestamp(t0, tz="UTC"), pd.Timestamp(t1, tz="UTC")
    axis = (
        f'<text x="{PAD}" y="{HEIGHT - 12}" font-size="11">{first:%Y-%m-%d}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 12}" font-size="11" text-anchor="end">{last:%Y-%m-%d}</text>'
        f'<text x="4" y="{PAD}" font-size="11">{html.escape(_short(v1))}</text>'
        f'<text x="4" y="{HEIGHT - PAD}" font-size="11">{html.escape(_short(v0))}</text>'
    )
    return (
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{html.escape(title)}">'
        f'<text x="{PAD}" y="14" font-size="12" font-weight="bold">{html.escape(title)}</text>'
        f"{''.join(parts)}{''.join(legend)}{axis}</svg>"
    )


def _short(value: float) -> str:
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
