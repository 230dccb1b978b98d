"""A sweep's outputs, beside its manifest: ``results.csv`` and
``results.parquet`` (the table), ``summary.md`` (spec, counts, the best
points), ``sweep.html`` (a sortable, filterable table and a heatmap over two
parameters; one self-contained file) and, with ``top``, full HTML reports
of the best points under ``top/``."""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from tidemark.adapters.research.sweep import SweepResult

TOP_ROWS = 10


def write_outputs(result: SweepResult, *, top: int = 0, report: bool = True) -> dict[str, Path]:
    folder = result.folder
    out = {"manifest": result.manifest}
    table = result.table
    out["csv"] = folder / "results.csv"
    table.to_csv(out["csv"], index=False)
    out["parquet"] = folder / "results.parquet"
    _parquet_safe(table).to_parquet(out["parquet"], index=False)
    out["markdown"] = folder / "summary.md"
    out["markdown"].write_text(markdown_summary(result), encoding="utf-8")
    if report:
        out["html"] = folder / "sweep.html"
        out["html"].write_text(html_page(result), encoding="utf-8")
    if top > 0:
        from tidemark.adapters.report_html import write_report

        reports = folder / "top"
        reports.mkdir(exist_ok=True)
        for _, row in result.top(top).iterrows():
            path = reports / f"{int(row['rank']):02d}-{row['run_id']}.html"
            write_report(result.result(int(row["index"])), path)
            out[f"top{int(row['rank'])}"] = path
    return out


def _parquet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """Object columns mixing types (a list parameter of numbers and text)
    stored as text, which Parquet requires."""
    safe = table.copy()
    for column in safe.columns:
        if safe[column].dtype == object:
            kinds = {type(v) for v in safe[column] if v is not None and not (isinstance(v, float) and math.isnan(v))}
            if len(kinds) > 1:
                safe[column] = safe[column].map(lambda v: None if v is None else str(v))
    return safe


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.4f}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def _md_table(frame: pd.DataFrame) -> str:
    columns = list(frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c]).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines)


def _shown(result: SweepResult) -> list[str]:
    spec = result.spec
    names = [d.name for d in spec.dims]
    lead = ["total_return", "max_drawdown", "sharpe", "trades", "final_equity"]
    metrics = [spec.objective] + [m for m in lead if m != spec.objective and m in result.table.columns]
    return ["rank", *names, *metrics, "run_id"]


def markdown_summary(result: SweepResult) -> str:
    spec, table = result.spec, result.table
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    qualified = int(table["qualified"].sum()) if len(table) else 0
    direction = "maximize" if spec.maximize else "minimize"
    currency = (
        str(table["currency"].dropna().iloc[0]) if "currency" in table and table["currency"].notna().any() else ""
    )
    lines = [
        f"# Sweep {result.sweep_id}",
        "",
        f"- strategy: {spec.config.strategy or 'ema_cross'}",
        f"- method: {spec.method}" + (f", {spec.trials} trials, seed {spec.seed}" if spec.method != "grid" else ""),
        f"- space: {', '.join(f'`{d.name}={d.text}`' for d in spec.dims)}",
        f"- objective: {direction} `{spec.objective}`",
        f"- constraints: {', '.join(f'`{r.text}`' for r in spec.constraints) or 'none'}",
        f"- points: {len(table)} ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}); {qualified} qualified",
        f"- money figures in {currency}" if currency else "- money figures: no run finished",
        f"- manifest: `{result.manifest.name}`, head `{result.head}`",
        f"- check every point: `tidemark verify {result.folder}`",
        "",
    ]
    if result.base is not None:
        base = ", ".join(f"{k} {_fmt(result.base.get(k))}" for k in (spec.objective, "max_drawdown") if k)
        lines += [f"Base run (the strategy's own parameters): {base}.", ""]
    best = result.top(TOP_ROWS)
    if len(best):
        lines += [f"## Best {len(best)}", "", _md_table(best[_shown(result)]), ""]
    else:
        lines += ["No point qualified.", ""]
    failed = table[table["status"] != "ok"]
    if len(failed):
        lines += [
            "## Points that did not run",
            "",
            _md_table(failed[["index", *[d.name for d in spec.dims], "status", "error"]].head(20)),
            "",
        ]
    return "\n".join(lines)


_SCRIPT = """
function sortBy(th){const t=th.closest('table'),i=[...th.parentNode.children].indexOf(th),b=t.tBodies[0];
const asc=th.dataset.dir!=='asc';th.dataset.dir=asc?'asc':'desc';
const key=r=>{const c=r.children[i],v=c.dataset.v;return v===undefined?c.textContent:(v===''?NaN:+v)};
[...b.rows].sort((x,y)=>{const a=key(x),c=key(y);
if(typeof a==='number'&&typeof c==='number'){if(isNaN(a))return 1;if(isNaN(c))return -1;return asc?a-c:c-a}
return asc?String(a).localeCompare(c):String(c).localeCompare(a)}).forEach(r=>b.appendChild(r))}
function filterRows(input){const q=input.value.toLowerCase();
for(const r of document.querySelectorAll('#points tbody tr'))
r.style.display=r.textContent.toLowerCase().includes(q)?'':'none'}
"""

_STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4;cursor:pointer}td.t{text-align:left}.heat td{min-width:48px}
code{background:#f4f4f4;padding:1px 4px}
"""


def _cell(value: Any) -> str:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    data = "" if not number or (isinstance(value, float) and math.isnan(value)) else repr(float(value))
    cls = "" if number else ' class="t"'
    attr = f' data-v="{data}"' if number or value is None else ""
    return f"<td{cls}{attr}>{html.escape(_fmt(value))}</td>"


def _color(value: float, low: float, high: float, maximize: bool) -> str:
    if math.isnan(value) or high <= low:
        return "#eeeeee"
    x = (value - low) / (high - low)
    x = x if maximize else 1 - x
    red, green = int(230 - 150 * x), int(120 + 100 * x)
    return f"rgb({red},{green},120)"


def heatmap_html(result: SweepResult) -> str:
    dims = result.spec.dims
    if len(dims) < 2:
        return ""
    x, y = dims[0].name, dims[1].name
    grid = result.heatmap(x, y)
    if grid.empty:
        return ""
    values = grid.to_numpy(dtype=float).ravel()
    finite = values[~pd.isna(values)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 0.0)
    head = "".join(f"<th>{html.escape(_fmt(c))}</th>" for c in grid.columns)
    rows = []
    for label, line in grid.iterrows():
        maximize = result.spec.maximize
        cells = "".join(
            f'<td style="background:{_color(v, low, high, maximize)}" data-v="{v!r}">{_fmt(v)}</td>'
            for v in map(float, line.to_numpy(dtype=float))
        )
        rows.append(f"<tr><th>{html.escape(_fmt(label))}</th>{cells}</tr>")
    averaged = " (other parameters averaged)" if len(dims) > 2 else ""
    return (
        f"<h2>{html.escape(result.spec.objective)} over {html.escape(x)} (columns) and {html.escape(y)} (rows)"
        f'{averaged}</h2><table class="heat"><thead><tr><th>{html.escape(y)} \\ {html.escape(x)}</th>{head}'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def html_page(result: SweepResult) -> str:
    table = result.table
    columns = [c for c in table.columns if c not in ("head", "journal", "error")]
    head = "".join(f'<th onclick="sortBy(this)">{html.escape(c)}</th>' for c in columns)
    body = "".join(
        "<tr>"
        + "".join(_cell(None if pd.isna(v) else v) if not isinstance(v, str) else _cell(v) for v in row)
        + "</tr>"
        for row in table[columns].itertuples(index=False)
    )
    summary = markdown_summary(result).splitlines()
    facts = "".join(
        "<li>" + re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(line[2:])) + "</li>"
        for line in summary
        if line.startswith("- ")
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>Sweep {result.sweep_id}</title><style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>"
        f"<h1>Sweep {result.sweep_id}</h1><ul>{facts}</ul>{heatmap_html(result)}"
        f'<h2>Points</h2><input placeholder="filter" oninput="filterRows(this)">'
        f'<table id="points"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>'
    )
