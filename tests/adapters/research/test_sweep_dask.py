"""A sweep on a real Dask cluster: a ``dask scheduler`` and ``dask worker``
processes on 127.0.0.1 (started by CI and named by TIDEMARK_DASK_SCHEDULER,
or started here), gives the same manifest, point for point and byte for
byte, as one process and a local pool.

Every Dask client lives in a child process (the CLI): a client leaves
threads behind in its process, and this test process must stay
single-threaded for the tests that run after it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tidemark

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tidemark" / "adapters" / "sample_data" / "SYNTH_BTC-1h.csv"
GRID = {"fast": [5, 10, 30], "slow": [20, 40]}
GRID_FLAGS = ["--grid", "fast=5,10,30", "--grid", "slow=20,40", "--constraint", "trades>=60"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_workers(address: str, n: int) -> None:
    code = (
        "import sys; from distributed import Client\n"
        "with Client(sys.argv[1], timeout='60s') as c: c.wait_for_workers(int(sys.argv[2]), timeout=120)\n"
    )
    subprocess.run([sys.executable, "-c", code, address, str(n)], check=True, env=ENV, timeout=200)


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    given = os.environ.get("TIDEMARK_DASK_SCHEDULER")
    if given:
        _wait_for_workers(given, 2)
        yield given
        return
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": ENV}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            **quiet,  # type: ignore[call-overload]
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dask",
                "worker",
                address,
                "--nworkers",
                "2",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
            ],
            **quiet,  # type: ignore[call-overload]
        ),
    ]
    try:
        _wait_for_workers(address, 2)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def cli_sweep(out: Path, *flags: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "tidemark", "sweep", "--data", str(SAMPLE), *flags, "--json", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=out.parent,
        env=ENV,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_a_sweep_on_a_dask_cluster_is_the_same_as_on_one_process(scheduler: str, tmp_path: Path) -> None:
    serial = tidemark.sweep("ema_cross", data=SAMPLE, grid=GRID, constraints=["trades>=60"], out=tmp_path / "one")
    cluster = cli_sweep(tmp_path / "dask", *GRID_FLAGS, "--scheduler", scheduler)
    assert cluster["ran"] == 6 and cluster["status"] == {"invalid": 1, "ok": 5}
    # workers that cannot write the sweep folder send each journal back; it is verified on arrival
    collected = cli_sweep(tmp_path / "collected", *GRID_FLAGS, "--scheduler", scheduler, "--collect")
    assert len(list((tmp_path / "collected" / "runs").glob("*.journal"))) == 5
    for other in (cluster, collected):
        assert other["sweep_id"] == serial.sweep_id and other["head"] == serial.head
        assert Path(str(other["manifest"])).read_bytes() == serial.manifest.read_bytes()
    assert tidemark.verify_sweep(tmp_path / "dask", audit=True).ok
    assert tidemark.verify_sweep(tmp_path / "collected").ok


def test_a_local_dask_cluster_from_the_cli(tmp_path: Path) -> None:
    local = cli_sweep(tmp_path / "local", "--grid", "fast=5,10", "--dask-workers", "2")
    assert local["status"] == {"ok": 2}
    one = tidemark.sweep("ema_cross", data=SAMPLE, grid={"fast": [5, 10]}, out=tmp_path / "one")
    assert Path(str(local["manifest"])).read_bytes() == one.manifest.read_bytes()
