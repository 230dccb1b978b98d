"""The interactive HTML report of a run: one self-contained file.

What it shows, read only from a :class:`~tidemark.adapters.backtest.Result`
(the journal's projections): the run's set-up and warnings at the top
(data files and period, strategy and params, cash, leverage, fees,
slippage, fill model; no commission, equity at zero, data repairs,
rejections), the metrics grouped (returns, risk, trades, costs) with units,
linked charts (price with candles and a marker for every fill, one pane per
symbol; equity; drawdown; position; PnL of every trade; funding and leverage
when the run has them) with zoom, pan and hover, and sortable, filterable
tables of every trade, order, fill, rejection and funding payment.

Plotting library: uPlot 1.6.32, vendored from the npm registry
(``assets/uPlot.iife.min.js``, MIT), chosen by measuring on this project's
machine (2 cores shared, Chromium 156 headless):

==================  ======================================  ==================================
library             script inlined in every report          drawing many points
==================  ======================================  ==================================
uPlot 1.6.32        51 KB (22 KB gzipped)                   lines by each pixel column's min
                                                            and max; canvas
Bokeh 3.9 inline    2.1 MB (bokeh, gl, widgets, tables);    level-of-detail by stride while
                    3.9 MB with its default components      interacting: hides spikes
Plotly.js 4.1.2     4.8 MB (1.5 MB gzipped)                 no decimation
==================  ======================================  ==================================

A 1,000,000-bar run plotted naively with Bokeh (raw candles and a close
line, inline resources) is a 41.7 MB file that took 37.8 s to build its
views in Chromium. This report of the same kind of run (the EMA(12/26)
cross of ``scripts/bench_backtest.py`` on 1,000,000 one-minute bars: 18,004
trades, 36,008 fills) is 17.6 MB, ``write_report`` takes 1.1-2.3 s, and the
page is ready 2.9 s after navigation (its script: 0.3 s decoding, 0.2 s
charts, 0.06 s tables); most of the file is the tables of every order, fill
and trade. The sample run (``tidemark backtest``: 4,000 bars, 77 trades) is
0.53 MB, written in 0.13 s. ``python scripts/report_size.py --browser``
measures these.

The data is embedded once, as base64 float64 (exact and NaN-keeping), so
the library is the fixed cost of every report and uPlot's is 40-90 times
smaller; its line paths keep each pixel column's min and max, so an extreme
stays visible at any zoom. Candles and fill markers are drawn by this
package's script (``assets/report.js``), which merges candles per pixel
column the same way.

Downsampling (:mod:`.sampling`): a run longer than ``max_points`` bars is
embedded as merged candles (highs and lows kept) and M4-reduced equity
curves (each bucket's first, last, min and max points kept), so the chart's
lowest drawdown is the max-drawdown metric; every fill and every trade is
embedded whatever the run's length.
"""

from __future__ import annotations

import html
import os
import sys
import webbrowser
from pathlib import Path
from typing import Any

from tidemark.adapters.report.model import DEFAULT_MAX_POINTS, build, run_warnings
from tidemark.adapters.report.page import render_page
from tidemark.adapters.report.stats import compute_stats

__all__ = ["DEFAULT_MAX_POINTS", "ReportView", "compute_stats", "render", "run_warnings", "write_report"]


def render(result: Any, *, max_points: int = DEFAULT_MAX_POINTS) -> str:
    """The report of ``result`` as one HTML document."""
    return render_page(build(result, max_points))


def write_report(result: Any, path: str | os.PathLike[str], *, max_points: int = DEFAULT_MAX_POINTS) -> Path:
    """Write the report of ``result`` to ``path`` (folders made as needed)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(result, max_points=max_points), encoding="utf-8")
    return target


class ReportView:
    """The report of a run shown inline by Jupyter (``_repr_html_``: the page
    in a sandboxed iframe, so its scripts run and its styles stay inside)."""

    def __init__(self, result: Any, *, height: int = 900, max_points: int = DEFAULT_MAX_POINTS) -> None:
        self.result = result
        self.height = height
        self.max_points = max_points
        self.path: Path | None = None

    @staticmethod
    def in_notebook() -> bool:
        """True in a Jupyter kernel (where ``_repr_html_`` is shown)."""
        shell = sys.modules.get("IPython")
        get = getattr(shell, "get_ipython", None)
        return get is not None and get() is not None and "ipykernel" in sys.modules

    def html(self) -> str:
        return render(self.result, max_points=self.max_points)

    def save(self, path: str | os.PathLike[str]) -> Path:
        self.path = write_report(self.result, path, max_points=self.max_points)
        return self.path

    def open(self) -> bool:
        """Open the saved file in the default browser."""
        if self.path is None:
            raise ValueError("save the report first")
        return webbrowser.open(self.path.resolve().as_uri())

    def _repr_html_(self) -> str:
        page = html.escape(self.html(), quote=True)
        return (
            f"<iframe srcdoc=\"{page}\" style='width:100%;height:{self.height}px;border:1px solid #ddd' "
            "sandbox='allow-scripts' title='tidemark report'></iframe>"
        )
