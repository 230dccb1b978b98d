"""A sweep on a real Dask cluster: a ``dask scheduler`` and ``dask worker``
processes on 127.0.0.1 (started by CI and named by TIDEMARK_DASK_SCHEDULER,
or started here), gives the same manifest, point for point and byte for
byte, as one process and a local pool."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tidemark

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tidemark" / "adapters" / "sample_data" / "SYNTH_BTC-1h.csv"
GRID = {"fast": [5, 10, 30], "slow": [20, 40]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    given = os.environ.get("TIDEMARK_DASK_SCHEDULER")
    if given:
        from distributed import Client

        with Client(given, timeout="30s") as client:
            client.wait_for_workers(2, timeout=120)
        yield given
        return
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            **quiet,  # type: ignore[call-overload]
        )
    ]
    try:
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                client = Client(address, timeout="2s")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        procs.append(
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
            )
        )
        client.wait_for_workers(2, timeout=120)
        client.close()
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_sweep_on_a_dask_cluster_is_the_same_as_on_one_process(scheduler: str, tmp_path: Path) -> None:
    serial = tidemark.sweep("ema_cross", data=SAMPLE, grid=GRID, constraints=["trades>=60"], out=tmp_path / "one")
    pool = tidemark.sweep(
        "ema_cross", data=SAMPLE, grid=GRID, constraints=["trades>=60"], out=tmp_path / "pool", workers=2
    )
    cluster = tidemark.sweep(
        "ema_cross", data=SAMPLE, grid=GRID, constraints=["trades>=60"], out=tmp_path / "dask", scheduler=scheduler
    )
    assert cluster.ran == 6 and (cluster.table["status"] == "ok").sum() == 5
    # workers that cannot write the sweep folder send each journal back; it is verified on arrival
    collected = tidemark.sweep(
        "ema_cross",
        data=SAMPLE,
        grid=GRID,
        constraints=["trades>=60"],
        out=tmp_path / "collected",
        scheduler=scheduler,
        collect=True,
    )
    assert len(list((tmp_path / "collected" / "runs").glob("*.journal"))) == 5
    for other in (pool, cluster, collected):
        assert other.table[["run_id", "head", "sharpe"]].equals(serial.table[["run_id", "head", "sharpe"]])
        assert other.manifest.read_bytes() == serial.manifest.read_bytes()
    assert tidemark.verify_sweep(cluster.folder, audit=True).ok


def test_a_local_dask_cluster_from_the_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tidemark",
            "sweep",
            "--data",
            str(SAMPLE),
            "--grid",
            "fast=5,10",
            "--dask-workers",
            "2",
            "--out",
            str(tmp_path / "local"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "2 points (2 ok)" in done.stdout
    one = tidemark.sweep("ema_cross", data=SAMPLE, grid={"fast": [5, 10]}, out=tmp_path / "one")
    assert (tmp_path / "local" / "sweep.journal").read_bytes() == one.manifest.read_bytes()
