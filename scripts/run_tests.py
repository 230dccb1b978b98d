"""The whole test suite in N pytest processes side by side (default: one per
core, at most 2), each taking one share of the tests (``--shard K/N``, see
tests/conftest.py), the shares balanced by the seconds each test took in a
recorded run (tests/durations.json; ``--record-durations`` rewrites it from
this run).

Why not pytest-xdist: its workers hold a communication thread, and with a
second thread in the process the journal's helper processes are spawned
rather than forked (tidemark.journal.child), which costs every in-process
run an interpreter start. Plain pytest processes keep the normal path.

    python scripts/run_tests.py                 # the suite (README, CI)
    python scripts/run_tests.py -k sweep        # arguments go to every pytest
    python scripts/run_tests.py --jobs 1        # one plain pytest process
    python scripts/run_tests.py --record-durations   # and rewrite tests/durations.json

Each share's output is printed whole when it ends, then the verdict; the exit
status is non-zero if any share failed. While they run, one line a minute
says how far each has got.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def progress(log: Path) -> str:
    """The last ``[ NN%]`` a share printed."""
    text = log.read_text(errors="replace") if log.exists() else ""
    marks = [line.rsplit("[", 1)[1].rstrip("]% ") for line in text.splitlines() if line.rstrip().endswith("%]")]
    return f"{marks[-1].strip()}%" if marks else "starting"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="pytest processes (default 2)")
    parser.add_argument(
        "--record-durations", action="store_true", help="rewrite tests/durations.json from this run's test times"
    )
    args, rest = parser.parse_known_args()
    compile_sources()
    base = [sys.executable, "-m", "pytest", "-q", *rest]
    with tempfile.TemporaryDirectory(prefix="tidemark-tests-") as tmp:
        records = [Path(tmp) / f"durations{k}.json" for k in range(max(args.jobs, 1))]
        if args.jobs <= 1:
            code = subprocess.call([*base, *recording(args, records[0])], cwd=ROOT)
            merge(args, records)
            return code
        codes = run_shares(base, args, Path(tmp), records)
        merge(args, records)
    # 5 is pytest's "no tests collected": a share may get none of a narrow selection
    failed = [code for code in codes if code not in (0, 5)]
    return failed[0] if failed else 5 if all(code == 5 for code in codes) else 0


def compile_sources() -> None:
    """Write the bytecode of the project's own modules once, up front. Where
    PYTHONDONTWRITEBYTECODE is set (as on CI) no process writes it, and
    every CLI run, sweep worker and spawned writer of the suite compiled
    tidemark from source again: about 0.3 s of each start (1.45 s for
    ``tidemark --version`` vs 1.15 s). compileall writes it regardless."""
    import compileall

    for folder in ("tidemark", "tests", "scripts"):
        compileall.compile_dir(ROOT / folder, quiet=1)


def recording(args: argparse.Namespace, record: Path) -> list[str]:
    return [f"--record-durations={record}"] if args.record_durations else []


def merge(args: argparse.Namespace, records: list[Path]) -> None:
    """tests/durations.json from the shares' records (kept as it was if none wrote one)."""
    if not args.record_durations:
        return
    merged: dict[str, float] = {}
    for record in records:
        if record.exists():
            merged.update(json.loads(record.read_text()))
    if merged:
        target = ROOT / "tests" / "durations.json"
        target.write_text(json.dumps(dict(sorted(merged.items())), indent=0) + "\n")
        print(f"wrote {target.relative_to(ROOT)}: {len(merged)} tests, {sum(merged.values()):.0f} s in all")


def run_shares(base: list[str], args: argparse.Namespace, tmp: Path, records: list[Path]) -> list[int]:
    """Every share side by side; each one's output printed whole when it ends."""
    start = time.monotonic()
    logs = [tmp / f"share{k}.log" for k in range(args.jobs)]
    procs = []
    for k, log in enumerate(logs):
        with open(log, "wb") as out:
            command = [*base, f"--shard={k}/{args.jobs}", *recording(args, records[k])]
            procs.append(subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT))
    printed = [False] * len(procs)
    last_note = time.monotonic()
    while not all(printed):
        time.sleep(1)
        for k, proc in enumerate(procs):
            if not printed[k] and proc.poll() is not None:
                print(f"===== share {k + 1} of {args.jobs}: exit {proc.returncode} =====", flush=True)
                sys.stdout.write(logs[k].read_text(errors="replace"))
                sys.stdout.flush()
                printed[k] = True
        if time.monotonic() - last_note >= 60 and not all(printed):
            last_note = time.monotonic()
            states = ", ".join(
                f"share {k + 1}: {'done' if printed[k] else progress(log)}" for k, log in enumerate(logs)
            )
            print(f"[{time.monotonic() - start:5.0f} s] {states}", flush=True)
    codes = [proc.returncode for proc in procs]
    verdict = "passed" if all(code in (0, 5) for code in codes) else "FAILED"
    print(f"===== {args.jobs} shares {verdict} in {time.monotonic() - start:.0f} s (exit codes {codes}) =====")
    return codes


if __name__ == "__main__":
    sys.exit(main())
