"""Screenshots of the HTML report for the README (docs/report-*.png), taken
by headless Chromium (/usr/bin/chromium) through Playwright.

    python scripts/report_screenshots.py

The run is ``tidemark backtest`` with no arguments: ema_cross on the sample
data with 100,000 USD.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    from playwright.sync_api import sync_playwright

    from tidemark.adapters.backtest import SAMPLE_DIR, run_backtest
    from tidemark.adapters.report import write_report

    out = ROOT / "docs"
    out.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tidemark-shots-"))
    data = sorted(SAMPLE_DIR.glob("*.csv"))[0]
    result = run_backtest("ema_cross", data=data, journal=work / "sample.journal", initial_cash=100_000)
    page_path = write_report(result, work / "sample.html")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(work / "profile"),
            executable_path="/usr/bin/chromium",
            args=ARGS,
            headless=True,
            viewport={"width": 1280, "height": 1000},
        )
        page = context.new_page()
        page.goto(page_path.resolve().as_uri())
        page.wait_for_function("window.tidemarkReport && window.tidemarkReport.ready")
        top = page.locator("#charts").bounding_box()
        assert top is not None
        page.screenshot(path=str(out / "report-overview.png"), clip={"x": 0, "y": 0, "width": 1280, "height": top["y"]})
        charts = page.locator("#charts")
        charts.screenshot(path=str(out / "report-charts.png"))
        # zoom to a stretch of trades and hover a fill marker
        first, last = page.evaluate("tidemarkReport.full")
        page.evaluate(f"tidemarkReport.setRange({first + (last - first) * 0.62}, {first + (last - first) * 0.70})")
        over = page.locator("[data-pane^='price:'] .u-over")
        over.scroll_into_view_if_needed()
        box = over.bounding_box()
        assert box is not None
        spot = page.evaluate(
            """() => {
              const c = tidemarkReport.charts[0], u = c.u, F = c.extra.P.fills;
              const mid = (u.scales.x.min + u.scales.x.max) / 2;
              let best = 0;
              for (let k = 0; k < F.time.length; k++)
                if (Math.abs(F.time[k] - mid) < Math.abs(F.time[best] - mid)) best = k;
              return [u.valToPos(F.time[best], 'x'), u.valToPos(F.price[best], 'y')];
            }"""
        )
        page.mouse.move(box["x"] + spot[0], box["y"] + spot[1])
        page.wait_for_timeout(100)
        charts.screenshot(path=str(out / "report-zoomed.png"))
        page.locator("#tables").screenshot(path=str(out / "report-tables.png"))
        context.close()
    for name in ("overview", "charts", "zoomed", "tables"):
        path = out / f"report-{name}.png"
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
