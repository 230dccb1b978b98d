"""The report as one HTML file: header, warnings, config and metrics as
static HTML; charts and tables drawn by the page's script from the data
embedded in the file. Every script and style is inlined: the file opens with
no network."""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from typing import Any

from tidemark.core.text import plural

ASSETS = ("uPlot.iife.min.js", "uPlot.min.css", "report.js", "report.css")


@cache
def asset(name: str) -> str:
    return (resources.files("tidemark.adapters.report") / "assets" / name).read_text(encoding="utf-8")


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element (no ``</script>``, no ``<!--``)."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _warnings(data: dict[str, Any]) -> str:
    items = data["warnings"]
    if not items:
        return "<section id='warnings' class='ok'><p>No warnings.</p></section>"
    lis = "".join(f"<li class='{_e(w['level'])}'>{_e(w['text'])}</li>" for w in items)
    return f"<section id='warnings'><h2>Warnings</h2><ul>{lis}</ul></section>"


def _config(data: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in data["config"])
    sources = "".join(
        f"<details><summary>Source of {_e(s['id'])} ({_e(s['origin'])})</summary><pre>{_e(s['source'])}</pre></details>"
        for s in data["source"]
        if s["source"]
    )
    return f"<section id='config'><h2>Run</h2><table class='kv'>{rows}</table>{sources}</section>"


def _metrics(data: dict[str, Any]) -> str:
    groups = []
    for group in data["metrics"]:
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in group["rows"])
        groups.append(f"<div class='group'><h3>{_e(group['group'])}</h3><table class='kv'>{rows}</table></div>")
    return f"<section id='metrics'><h2>Metrics</h2><div class='groups'>{''.join(groups)}</div></section>"


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _monthly(data: dict[str, Any]) -> str:
    monthly = data.get("monthly")
    if not monthly:
        return ""
    head = "".join(f"<th>{m}</th>" for m in MONTHS)
    rows = []
    for year, values in zip(monthly["years"], monthly["rows"], strict=True):
        cells = "".join(
            "<td></td>" if v is None else f"<td class='{'pos' if v >= 0 else 'neg'}'>{v * 100:.2f}%</td>"
            for v in values
        )
        rows.append(f"<tr><th>{year}</th>{cells}</tr>")
    return (
        "<section id='monthly'><h3>Monthly returns</h3>"
        f"<table class='monthly'><tr><th></th>{head}</tr>{''.join(rows)}</table></section>"
    )


def _header(data: dict[str, Any]) -> str:
    run = data["run"]
    events = plural(int(run["events"]), "event", grouped=True)
    return (
        f"<header><h1>{_e(data['title'])}</h1><p class='sub'>Journal <code>{_e(run['journal'])}</code> · "
        f"{events} · chain head <code>{_e(run['head'])}</code> · tidemark {_e(run['version'])}</p>"
        "</header>"
    )


CHARTS = """<section id='charts'><h2>Charts</h2>
<div class='toolbar'>
<button type='button' id='tm-reset' title='Show the whole run (double-click a chart)'>Reset zoom</button>
<button type='button' id='tm-zoom-in' title='Zoom in'>+</button>
<button type='button' id='tm-zoom-out' title='Zoom out'>−</button>
<button type='button' id='tm-left' title='Pan left'>◀</button>
<button type='button' id='tm-right' title='Pan right'>▶</button>
<span id='tm-symbols'></span>
<span class='hint'>Drag to zoom · wheel to zoom · shift-drag to pan · double-click to reset</span>
<span id='tm-range'></span>
</div>
<p id='tm-sampling' class='note'></p>
<div id='tm-panes'></div>
<div id='tm-tip' hidden></div>
<noscript><p>The charts and tables need JavaScript.</p></noscript>
</section>
<section id='tables'><h2>Tables</h2><div id='tm-tabs'></div><div id='tm-table'></div></section>"""


def render_page(data: dict[str, Any]) -> str:
    title = _e(data["title"])
    style = asset("uPlot.min.css") + asset("report.css")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"
        f"<title>{title}</title><style>{style}</style></head><body>"
        f"{_header(data)}{_warnings(data)}{_config(data)}{_metrics(data)}{_monthly(data)}{CHARTS}"
        "<footer>Charts drawn with uPlot (MIT licence, © Leon Sorokin), inlined in this file.</footer>"
        f"<script id='tm-data' type='application/json'>{_script_json(_page_data(data))}</script>"
        f"<script>{asset('uPlot.iife.min.js')}</script><script>{asset('report.js')}</script>"
        "</body></html>"
    )


def _page_data(data: dict[str, Any]) -> dict[str, Any]:
    """What the script needs (the rest is already HTML)."""
    skip = {"config", "source", "metrics", "warnings", "monthly"}
    return {k: v for k, v in data.items() if k not in skip}
