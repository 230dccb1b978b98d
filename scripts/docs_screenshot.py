"""The screenshot of the report in the docs and the README (docs/img/report.png).

    python scripts/docs_screenshot.py

Runs the default backtest (``tidemark backtest``: ema_cross on the bundled
sample data) in a temporary folder and photographs the top of its HTML
report (set-up, warnings, metrics and the linked charts) in headless
Chromium (/usr/bin/chromium) through Playwright, as the report's browser
tests do. The PNG must stay under 300 KB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img" / "report.png"
LIMIT = 300_000
CHROMIUM = "/usr/bin/chromium"
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
WIDTH, HEIGHT = 1200, 1500


def main() -> None:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="tidemark-docs-shot-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "tidemark", "backtest", "--journal", "run.journal"],
        cwd=work,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    report = work / "run.html"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(work / "profile"),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            viewport={"width": WIDTH, "height": HEIGHT},
        )
        page = context.new_page()
        page.goto(report.resolve().as_uri())
        page.wait_for_function("window.tidemarkReport && window.tidemarkReport.ready")
        page.wait_for_timeout(200)
        page.screenshot(path=str(OUT), clip={"x": 0, "y": 0, "width": WIDTH, "height": HEIGHT})
        context.close()
    size = OUT.stat().st_size
    print(f"{OUT.relative_to(ROOT)}: {size:,} bytes")
    if size > LIMIT:
        raise SystemExit(f"{OUT.relative_to(ROOT)} is {size:,} bytes, over {LIMIT:,}: lower HEIGHT or WIDTH")


if __name__ == "__main__":
    main()
