"""The whole test suite in N pytest processes side by side (default: one per
core, at most 2), each taking every N-th test (``--shard K/N``, see
tests/conftest.py).

Why not pytest-xdist: its workers hold a communication thread, and with a
second thread in the process the journal's helper processes are spawned
rather than forked (tidemark.journal.child), which costs every in-process
run an interpreter start. Plain pytest processes keep the normal path.

    python scripts/run_tests.py                 # the suite (README, CI)
    python scripts/run_tests.py -k sweep        # arguments go to every pytest
    python scripts/run_tests.py --jobs 1        # one plain pytest process

Each share's output is printed whole when it ends, then the verdict; the exit
status is non-zero if any share failed. While they run, one line a minute
says how far each has got.
"""

from __future__ import annotations

import argparse
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
    args, rest = parser.parse_known_args()
    base = [sys.executable, "-m", "pytest", "-q", *rest]
    if args.jobs <= 1:
        return subprocess.call(base, cwd=ROOT)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tidemark-tests-") as tmp:
        logs = [Path(tmp) / f"share{k}.log" for k in range(args.jobs)]
        procs = []
        for k, log in enumerate(logs):
            with open(log, "wb") as out:
                procs.append(
                    subprocess.Popen(
                        [*base, f"--shard={k}/{args.jobs}"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
                    )
                )
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
    # 5 is pytest's "no tests collected": a share may get none of a narrow selection
    failed = [code for code in codes if code not in (0, 5)]
    status = failed[0] if failed else 5 if all(code == 5 for code in codes) else 0
    verdict = "passed" if status == 0 else "FAILED"
    print(f"===== {args.jobs} shares {verdict} in {time.monotonic() - start:.0f} s (exit codes {codes}) =====")
    return status


if __name__ == "__main__":
    sys.exit(main())
