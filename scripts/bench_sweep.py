"""Sweep throughput: an EMA-cross grid on 3 symbols x 70,000 one-hour bars.

    python scripts/bench_sweep.py [--points 1000] [--workers 2] [--baseline 8] [--no-dask]

Prints, for each way of running the same points, the wall time of the whole
command, runs/s, bytes written and the largest single process's peak memory:

(a) one run at a time through the single-file path, as a user scripts it
    (``tidemark backtest --param ...`` per point, no report), timed on the
    first ``--baseline`` points and extrapolated to ``--points``;
(b) ``tidemark sweep --workers N`` (a local pool), the points' market
    inputs journaled once (the default), and (b1) with ``--single-file``,
    each point's journal holding its own copy;
(c) ``tidemark sweep --dask-workers N`` (a local Dask cluster).

Every point's journal is written in each case; (b) and (c) also write the
manifest and the results. The manifests of (b) and (c) are compared byte for
byte. Nothing here is asserted: the figures are for the reader.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SYMBOLS = ("AAA", "BBB", "CCC")


def make_data(folder: Path, bars: int) -> list[Path]:
    paths = []
    for k, symbol in enumerate(SYMBOLS):
        rng = np.random.Generator(np.random.PCG64(k + 1))
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, bars)))
        open_ = np.concatenate(([100.0], close[:-1]))
        wiggle = np.abs(rng.normal(0, 0.003, bars)) * close
        index = pd.date_range("2015-01-01", periods=bars, freq="1h", tz="UTC")
        frame = pd.DataFrame(
            {
                "Open": open_,
                "High": np.maximum(open_, close) + wiggle,
                "Low": np.minimum(open_, close) - wiggle,
                "Close": close,
                "Volume": rng.lognormal(5, 0.5, bars),
            },
            index=index,
        )
        path = folder / f"{symbol}-1h.csv"
        frame.to_csv(path, index_label="Date")
        paths.append(path)
    return paths


def grid(points: int) -> tuple[list[int], list[int]]:
    """``fast`` x ``slow`` with about ``points`` combinations, fast < slow always."""
    slow_count = max(1, round(math.sqrt(points / 1.6)))
    fast_count = max(1, math.ceil(points / slow_count))
    fast = list(range(2, 2 + fast_count))
    slow = list(range(fast[-1] + 10, fast[-1] + 10 + 10 * slow_count, 10))
    return fast, slow


def measured(cmd: list[str], cwd: Path) -> dict[str, float]:
    """Wall seconds and the largest process's peak RSS (MB) of ``cmd``'s tree."""
    wrapper = (
        "import json, resource, subprocess, sys, time; t = time.perf_counter(); "
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(json.dumps({'seconds': time.perf_counter() - t, 'rc': done.returncode, 'err': done.stderr[-400:], "
        "'peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], cwd=cwd, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed: {result['err']}")
    return result


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--bars", type=int, default=70_000, help="one-hour bars per symbol")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", type=int, default=8, help="points timed one at a time for (a)")
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    tidemark = [sys.executable, "-m", "tidemark"]
    with tempfile.TemporaryDirectory(prefix="tidemark-bench-sweep-") as tmp:
        work = Path(tmp)
        paths = make_data(work, args.bars)
        data = [a for p, s in zip(paths, SYMBOLS, strict=True) for a in ("--data", str(p), "--symbol", s)]
        fast, slow = grid(args.points)
        combos = [(f, s) for f in fast for s in slow][: args.points]
        print(
            f"{len(SYMBOLS)} symbols x {args.bars:,} one-hour bars = {len(SYMBOLS) * args.bars:,} bars; "
            f"{len(combos)} points (fast {fast[0]}..{fast[-1]}, slow {slow[0]}..{slow[-1]}); "
            f"{args.workers} workers"
        )
        rows = []
        single = work / "single"
        single.mkdir()
        start = time.perf_counter()
        peak = 0.0
        for f, s in combos[: args.baseline]:
            run = measured(
                [
                    *tidemark,
                    "backtest",
                    *data,
                    "--param",
                    f"fast={f}",
                    "--param",
                    f"slow={s}",
                    "--param",
                    "size=10",
                    "--no-report",
                    "--journal",
                    str(single / f"p{f}-{s}.journal"),
                ],
                work,
            )
            peak = max(peak, run["peak_mb"])
        seconds = time.perf_counter() - start
        per_run = seconds / args.baseline
        rows.append(
            (
                "(a) one backtest at a time",
                per_run * len(combos),
                1 / per_run,
                size_of(single) / args.baseline * len(combos),
                peak,
                "extrapolated",
            )
        )
        fast_text = ",".join(map(str, fast))
        slow_text = ",".join(map(str, slow))
        sweep_args = [
            "sweep",
            *data,
            "--param",
            "size=10",
            "--grid",
            f"fast={fast_text}",
            "--grid",
            f"slow={slow_text}",
            "--no-report",
        ]
        manifests = {}
        ways = [
            ("(b) sweep, local pool", ["--workers", str(args.workers)]),
            ("(b1) the same, --single-file", ["--workers", str(args.workers), "--single-file"]),
        ]
        if not args.no_dask:
            ways.append(("(c) sweep, local Dask cluster", ["--dask-workers", str(args.workers)]))
        for label, extra in ways:
            out = work / label.split()[0].strip("()")
            run = measured([*tidemark, *sweep_args, *extra, "--out", str(out)], work)
            points = len(fast) * len(slow)
            rows.append(
                (label, run["seconds"], points / run["seconds"], size_of(out), run["peak_mb"], f"{points} points")
            )
            manifests[label] = (out / "sweep.journal").read_bytes()
        print(f"{'':34}{'wall s':>9}{'runs/s':>9}{'written':>11}{'peak MB':>9}")
        for label, wall, rate, written, peak_mb, note in rows:
            print(f"{label:34}{wall:9.1f}{rate:9.2f}{written / 1e9:9.2f} GB{peak_mb:9.0f}  {note}")
        if len(set(manifests.values())) == 1:
            print(f"manifests of {', '.join(label.split()[0] for label in manifests)} identical: True")
        else:
            print("manifests differ: " + ", ".join(label.split()[0] for label in manifests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
