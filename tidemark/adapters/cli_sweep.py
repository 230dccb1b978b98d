"""``tidemark sweep``, and ``verify``/``audit`` of a sweep folder."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from tidemark.adapters.progress import ProgressBar
from tidemark.core.text import plural

EXIT_OK, EXIT_CHECK_FAILED = 0, 1


def add_parser(sub: Any, common: argparse.ArgumentParser, run_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    sw = sub.add_parser(
        "sweep",
        parents=[common],
        help="run a strategy over many parameter sets (grid, random or Optuna search), every point journaled",
        description="Examples: tidemark sweep --grid fast=5:50:5 --grid slow=20:200:10 --objective sharpe; "
        "tidemark sweep --space fast=5:50 --space slow=20:200 --random 100 --search-seed 7",
    )
    run_flags(sw)
    add_search_flags(sw)
    sw.add_argument("--workers", type=int, help="local worker processes (default: one per core; 1: this process)")
    sw.add_argument("--scheduler", metavar="ADDRESS", help="run on this Dask scheduler (tcp://host:8786)")
    sw.add_argument("--dask-workers", type=int, metavar="N", help="start a local Dask cluster of N workers")
    sw.add_argument(
        "--collect",
        action="store_true",
        help="Dask workers send each journal back (workers that cannot write the sweep folder)",
    )
    sw.add_argument(
        "--single-file",
        action="store_true",
        help="each point's journal holds its own copy of the market inputs "
        "(default: stored once, in inputs/, and read from there)",
    )
    sw.add_argument("--out", help="sweep folder (default sweeps/<strategy>-<sweep id>)")
    sw.add_argument("--force", action="store_true", help="start over in a folder that holds another sweep")
    sw.add_argument("--top", type=int, default=0, metavar="N", help="full HTML reports of the best N points")
    sw.add_argument("--no-report", action="store_true", help="no sweep.html")
    sw.add_argument("--json", action="store_true", help="print the summary as JSON")
    sw.add_argument("--progress", action="store_true", help="progress lines even when stderr is not a terminal")
    sw.set_defaults(func=cmd_sweep)


def add_search_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that say which points to run and how to rank them (``sweep`` and ``walkforward``)."""
    parser.add_argument(
        "--grid", action="append", default=[], metavar="NAME=SPEC", help="grid dimension: 5:50:5, 5:50 or 5,10,20"
    )
    parser.add_argument(
        "--space", action="append", default=[], metavar="NAME=SPEC", help="search dimension for --random/--optuna"
    )
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--random", type=int, metavar="N", help="random search: N points drawn from --space")
    how.add_argument("--optuna", type=int, metavar="N", help="Bayesian search (Optuna TPE): N trials over --space")
    parser.add_argument("--search-seed", type=int, default=0, help="seed of the random or Optuna search (default 0)")
    parser.add_argument("--batch", type=int, default=8, help="Optuna trials asked at a time (default 8)")
    parser.add_argument("--objective", default="sharpe", help="metric to rank by (default sharpe)")
    parser.add_argument("--minimize", action="store_true", help="rank the objective ascending")
    parser.add_argument(
        "--constraint",
        action="append",
        default=[],
        metavar="RULE",
        help="a point qualifies only if RULE holds: max_drawdown>=-0.25, trades>=10, max_drawdown>=base",
    )


def spec_from_args(args: argparse.Namespace, config: Any) -> Any:
    """The SweepSpec the search flags (:func:`add_search_flags`) describe over ``config``."""
    from tidemark.adapters.cli import UsageError
    from tidemark.adapters.research.sweep import Rule, SweepSpec, dims_from

    if args.grid and args.space:
        raise UsageError("give --grid (every combination) or --space with --random/--optuna, not both")
    if args.grid and (args.random or args.optuna):
        raise UsageError("--random and --optuna draw from --space, not --grid")
    if args.space and not (args.random or args.optuna):
        raise UsageError("--space needs --random N or --optuna N")
    if not args.grid and not args.space:
        raise UsageError("nothing to sweep: give --grid NAME=SPEC (or --space with --random/--optuna)")
    return SweepSpec(
        config,
        tuple(dims_from(args.grid or args.space)),
        "optuna" if args.optuna else "random" if args.random else "grid",
        args.optuna or args.random or 0,
        args.search_seed,
        args.objective,
        not args.minimize,
        tuple(Rule.parse(c) for c in args.constraint),
        args.batch,
    )


def cmd_sweep(args: argparse.Namespace) -> int:
    from tidemark.adapters.cli import config_from_args
    from tidemark.adapters.research.sweep import run_sweep

    spec = spec_from_args(args, config_from_args(args))
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    progress = ProgressBar("sweep", unit="runs") if (sys.stderr.isatty() or args.progress) else None
    result = run_sweep(
        spec,
        data=args.data,
        out=args.out,
        workers=workers,
        scheduler=args.scheduler,
        dask_workers=args.dask_workers,
        tz=args.tz,
        progress=progress,
        top=args.top,
        report=not args.no_report,
        force=args.force,
        collect=args.collect,
        shared=not args.single_file,
    )
    if progress is not None:
        progress.close()
    table = result.table
    counts = {str(k): int(v) for k, v in table["status"].value_counts().sort_index().items()}
    best = result.best
    if args.json:
        print(
            json.dumps(
                {
                    "sweep_id": result.sweep_id,
                    "folder": str(result.folder),
                    "manifest": str(result.manifest),
                    "head": result.head,
                    "points": len(table),
                    "ran": result.ran,
                    "status": counts,
                    "qualified": int(table["qualified"].sum()),
                    "best": None if best is None else _jsonable(best.to_dict()),
                    "outputs": {k: str(v) for k, v in result.outputs.items()},
                },
                sort_keys=True,
            )
        )
    else:
        print(_summary(result, counts))
    return EXIT_OK if counts.get("ok") else EXIT_CHECK_FAILED


def _jsonable(row: Mapping[Any, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float) and value != value:
            value = None
        out[str(key)] = value
    return out


def _summary(result: Any, counts: dict[str, int]) -> str:
    from tidemark.adapters.research.outputs import _fmt

    spec, table = result.spec, result.table
    names = [d.name for d in spec.dims]
    reused = len(table) - result.ran
    lines = [
        f"sweep {result.sweep_id}: {plural(len(table), 'point')} "
        f"({', '.join(f'{v} {k}' for k, v in counts.items())}), "
        f"{int(table['qualified'].sum())} qualified; {result.ran} run, {reused} read back",
    ]
    top = result.top(5)
    if len(top):
        direction = "highest" if spec.maximize else "lowest"
        lines.append(f"best by {spec.objective} ({direction} first):")
        shown = [
            "rank",
            *names,
            spec.objective,
            *[m for m in ("total_return", "max_drawdown", "trades") if m != spec.objective],
        ]
        shown = [c for c in shown if c in top.columns]
        widths = {c: max(len(c), *(len(_fmt(v)) for v in top[c])) for c in shown}
        lines.append("  " + "  ".join(c.rjust(widths[c]) for c in shown))
        for _, row in top.iterrows():
            lines.append("  " + "  ".join(_fmt(row[c]).rjust(widths[c]) for c in shown))
    else:
        lines.append("no point qualified")
    invalid = table[table["status"] != "ok"]
    if len(invalid):
        first = invalid.iloc[0]
        lines.append(f"{plural(len(invalid), 'point')} did not run; first: point {first['index']}: {first['error']}")
    lines.append(f"folder:   {result.folder}")
    lines.append(f"manifest: {result.manifest}  head {result.head}")
    lines.append(f"          (check every point: tidemark verify {result.folder})")
    lines.extend(
        f"{key + ':':9} {result.outputs[key]}"
        for key in ("csv", "parquet", "markdown", "html")
        if key in result.outputs
    )
    reports = [v for k, v in result.outputs.items() if k.startswith("top")]
    if reports:
        lines.append(f"reports:  {len(reports)} in {reports[0].parent}")
    return "\n".join(lines)


def cmd_sweep_proof(args: argparse.Namespace, *, audit: bool) -> int:
    from tidemark.adapters.research.proof import verify_sweep

    progress = ProgressBar("audit" if audit else "verify", unit="points") if sys.stderr.isatty() else None
    proof = verify_sweep(args.journal, audit=audit, progress=progress)
    if progress is not None:
        progress.close()
    if getattr(args, "json", False):
        print(
            json.dumps(
                {
                    "ok": proof.ok,
                    "manifest": str(proof.manifest),
                    "sweep_id": proof.sweep_id,
                    "head": proof.head,
                    "points": proof.points,
                    "checked": proof.checked,
                    "problems": proof.problems,
                },
                sort_keys=True,
            )
        )
    else:
        what = "verified and replayed" if audit else "verified"
        print(
            f"{proof.manifest}: sweep {proof.sweep_id or '?'}, {plural(proof.points, 'point')}, "
            f"{proof.checked} journals {what} against the manifest (head {proof.head})"
        )
        for problem in proof.problems:
            print(f"  {problem}")
        print(("audit" if audit else "verify") + (": PASS" if proof.ok else ": FAIL"))
    return EXIT_OK if proof.ok else EXIT_CHECK_FAILED
