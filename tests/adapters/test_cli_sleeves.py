"""sleeves with seed 000's order model from the command line: the example
run config in docs/examples gives the journal the Python API gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import tidemark as tm

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tidemark" / "adapters" / "sample_data"
EXAMPLE = ROOT / "docs" / "examples" / "sleeves_seed000.json"


def test_the_seed_000_example_config_runs_as_from_python(tmp_path: Path) -> None:
    data = [SAMPLES / "SYNTH_BTC-1h.csv", SAMPLES / "SYNTH_ETH-1h.csv"]
    journal = tmp_path / "cli.journal"
    args = ["backtest", "--config", str(EXAMPLE), "--journal", str(journal), "--no-report", "--json"]
    for path in data:
        args += ["--data", str(path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tidemark", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert metrics["account"] == "margin" and metrics["leverage"] == 3.0 and metrics["trades"] > 10
    python = tm.run_backtest(config=str(EXAMPLE), data=data, journal=tmp_path / "py.journal")
    assert python.head == tm.Result.from_journal(journal).head  # the same run, byte for byte
