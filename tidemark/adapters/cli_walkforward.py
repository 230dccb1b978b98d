"""``tidemark walkforward``: a sweep per train window, its best point run out of sample, the curves chained."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from tidemark.adapters.cli_sweep import add_search_flags, spec_from_args
from tidemark.adapters.progress import ProgressBar
from tidemark.core.text import plural

EXIT_OK, EXIT_CHECK_FAILED = 0, 1


def add_parser(sub: Any, common: argparse.ArgumentParser, run_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    wf = sub.add_parser(
        "walkforward",
        parents=[common],
        help="walk-forward analysis: optimise on each train window, trade the choice on the next test window",
        description="Examples: tidemark walkforward --grid fast=5:50:5 --grid slow=20:200:20 --train 90d --test 30d "
        "--out wf; tidemark walkforward --space fast=5:50 --random 50 --train 2000 --test 500 --anchored --out wf. "
        "The run flags describe the base run (--start/--end: the part of the data used; --warmup: bars or a "
        "duration shown before each window without trading, default the train length). Exit 0 when at least "
        "one window traded out of sample, 1 when none did, 2 for bad input.",
    )
    run_flags(wf)
    add_search_flags(wf)
    wf.add_argument("--workers", type=int, help="local worker processes (default: one per core; 1: this process)")
    wf.add_argument("--scheduler", metavar="ADDRESS", help="run the train sweeps on this Dask scheduler")
    wf.add_argument("--dask-workers", type=int, metavar="N", help="run the train sweeps on a local Dask cluster")
    wf.add_argument("--train", required=True, metavar="LENGTH", help="train window: a duration (90d) or bars (2000)")
    wf.add_argument("--test", required=True, metavar="LENGTH", help="test window: a duration (30d) or bars (500)")
    wf.add_argument("--step", metavar="LENGTH", help="how far windows move (default: the test length)")
    wf.add_argument("--anchored", action="store_true", help="every train window starts at the data's start")
    wf.add_argument("--out", required=True, help="folder for the train sweeps, out-of-sample journals and outputs")
    wf.add_argument("--force", action="store_true", help="start train sweeps over in folders holding other sweeps")
    wf.add_argument("--json", action="store_true", help="print the summary as JSON")
    wf.add_argument("--progress", action="store_true", help="progress lines even when stderr is not a terminal")
    wf.set_defaults(func=cmd_walkforward)


def cmd_walkforward(args: argparse.Namespace) -> int:
    from tidemark.adapters.cli import config_from_args
    from tidemark.adapters.research.walkforward import run_walk_forward

    warmup, args.warmup = args.warmup, None  # the walk-forward's warm-up, not the base run's
    spec = spec_from_args(args, config_from_args(args))
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    progress = ProgressBar("walkforward", unit="windows") if (sys.stderr.isatty() or args.progress) else None
    result = run_walk_forward(
        spec,
        data=args.data,
        train=args.train,
        test=args.test,
        step=args.step,
        anchored=args.anchored,
        warmup=warmup,
        out=args.out,
        workers=workers,
        scheduler=args.scheduler,
        dask_workers=args.dask_workers,
        force=args.force,
        tz=args.tz,
        progress=progress,
    )
    if progress is not None:
        progress.close()
    if args.json:
        print(json.dumps(_json(result), sort_keys=True))
    else:
        print(_summary(result, args))
    return EXIT_OK if result.traded else EXIT_CHECK_FAILED


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _json(result: Any) -> dict[str, Any]:
    return {
        "folder": str(result.folder),
        "windows": [{str(k): _plain(v) for k, v in row.items()} for row in result.windows.to_dict("records")],
        "traded": result.traded,
        "skipped": len(result.windows) - result.traded,
        "metrics": {k: _plain(v) for k, v in result.metrics.items()},
        "outputs": {k: str(v) for k, v in result.outputs.items()},
    }


def _summary(result: Any, args: argparse.Namespace) -> str:
    from tidemark.adapters.research.outputs import _fmt

    spec, table = result.spec, result.windows
    objective = spec.objective
    kind = "anchored" if args.anchored else "rolling"
    skipped = len(table) - result.traded
    lines = [
        f"walk-forward: {plural(len(table), 'window')} ({kind}, train {args.train}, test {args.test}"
        + (f", step {args.step}" if args.step else "")
        + f", warm-up {result.warmup}); {result.traded} traded out of sample"
        + (f", {skipped} skipped (no qualified point in sample)" if skipped else "")
    ]
    names = [d.name for d in spec.dims]
    shown = ["window", "test_start", "test_end", *names, f"is_{objective}", f"oos_{objective}", "oos_total_return"]
    shown += ["oos_trades"] if objective != "trades" else []
    cells = [[_cell(row[c], _fmt) for c in shown] for _, row in table.iterrows()]
    widths = [max(len(c), *(len(r[k]) for r in cells)) for k, c in enumerate(shown)]
    lines.append("  " + "  ".join(c.rjust(w) for c, w in zip(shown, widths, strict=True)))
    lines += ["  " + "  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    if result.metrics:
        figures = ", ".join(
            f"{k} {_fmt(_plain(result.metrics.get(k)))}" for k in ("total_return", "max_drawdown", "sharpe", "trades")
        )
        lines.append(f"stitched out of sample: {figures}")
    else:
        lines.append("no window traded out of sample: no out-of-sample curve")
    lines.append(f"folder:   {result.folder}")
    lines.extend(f"{key + ':':9} {result.outputs[key]}" for key in ("windows", "equity", "markdown", "html"))
    return "\n".join(lines)


def _cell(value: Any, fmt: Callable[[Any], str]) -> str:
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M"))
    value = _plain(value)
    return "-" if value is None or value == "" else fmt(value)
