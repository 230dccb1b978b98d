"""Where a sweep's points run: in this process, on a pool of local worker
processes, or on a Dask cluster.

Every executor takes the sweep's :class:`~.point.Setup` once and then runs
batches of :class:`~.point.PointTask`, yielding each :class:`~.point.PointRow`
as it finishes (in any order: the sweep puts them back in index order).
Workers load the market once per setup, not once per point.

The local pool's workers are spawned (a fresh interpreter: safe whatever
threads this process runs) and talk over pipes, one task at a time, so a
worker is single-threaded and each run's journal writer can fork from it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

from tidemark.adapters.research.point import STATUS_FAILED, PointRow, PointTask, Setup, run_point


class Executor(Protocol):
    name: str
    workers: int

    def run(self, tasks: list[PointTask]) -> Iterator[PointRow]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """Every point in this process, one after another."""

    name = "serial"
    workers = 1

    def __init__(self, setup: Setup) -> None:
        self._setup = setup

    def run(self, tasks: list[PointTask]) -> Iterator[PointRow]:
        for task in tasks:
            yield run_point(self._setup, task)

    def close(self) -> None:
        pass


def _worker_main(conn: Connection, setup: Setup) -> None:
    """A pool worker: run tasks from ``conn`` until it sends None or closes."""
    import signal

    # Ctrl-C reaches the whole process group: the sweep's process decides
    # (it stops the workers); a worker finishes or is terminated.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            row = run_point(setup, task)
        except BaseException as exc:  # a bug of ours, not the point's: report it, keep the worker
            row = PointRow(task.index, task.params, STATUS_FAILED, error=f"worker error: {exc!r}")
        try:
            conn.send(row)
        except (BrokenPipeError, OSError):
            return


class LocalPool:
    """``workers`` spawned processes on this machine."""

    name = "local"

    def __init__(self, setup: Setup, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._setup = setup
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[Any] = []
        self._conns: list[Connection] = []
        for _ in range(self.workers):
            self._start()

    def _start(self) -> int:
        ours, theirs = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker_main, args=(theirs, self._setup), name="tidemark-sweep-worker")
        proc.start()
        theirs.close()
        self._procs.append(proc)
        self._conns.append(ours)
        return len(self._conns) - 1

    def run(self, tasks: list[PointTask]) -> Iterator[PointRow]:
        queue = list(reversed(tasks))
        busy: dict[int, PointTask] = {}
        idle = list(range(len(self._conns)))
        while queue or busy:
            while queue and idle:
                slot = idle.pop()
                task = queue.pop()
                self._conns[slot].send(task)
                busy[slot] = task
            ready = wait([self._conns[s] for s in busy])
            for slot in sorted(busy):
                conn = self._conns[slot]
                if conn not in ready:
                    continue
                task = busy.pop(slot)
                try:
                    row = conn.recv()
                except (EOFError, OSError):
                    code = self._procs[slot].exitcode
                    row = PointRow(
                        task.index, task.params, STATUS_FAILED, error=f"the worker process died (exit code {code})"
                    )
                    self._replace(slot)
                idle.append(slot)
                yield row

    def _replace(self, slot: int) -> None:
        self._conns[slot].close()
        self._procs[slot].join(1)
        ours, theirs = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker_main, args=(theirs, self._setup), name="tidemark-sweep-worker")
        proc.start()
        theirs.close()
        self._procs[slot] = proc
        self._conns[slot] = ours

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(None)
        for proc in self._procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        for conn in self._conns:
            conn.close()

    def terminate(self) -> None:
        """Stop now (an interrupted sweep): points in flight are lost; their
        journals are unfinished and run again on resume."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join(5)


class DaskExecutor:
    """Points as tasks on a Dask cluster: ``address`` of a running scheduler
    (``tcp://host:8786``), or a local cluster of ``workers`` processes
    started here (one thread each). The setup is scattered to every worker
    once; journals are written to ``runs_dir``, which every worker must be
    able to write at the same path (one machine, or a shared filesystem)."""

    name = "dask"

    def __init__(self, setup: Setup, *, address: str | None = None, workers: int | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise RuntimeError(
                "Dask is not installed: pip install 'tidemark[research]' (or dask[distributed])"
            ) from None
        self._cluster = None
        import dask

        # Each point's journal writer is a child process, which a daemonic
        # worker may not start; workers of a cluster started elsewhere that
        # are daemons write journals from their own process instead.
        dask.config.set({"distributed.worker.daemon": False})
        if address:
            self._client = Client(address, timeout="10s")
        else:
            self._cluster = LocalCluster(
                n_workers=max(1, workers or os.cpu_count() or 1),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                host="127.0.0.1",
            )
            self._client = Client(self._cluster)
        self.workers = max(1, len(self._client.scheduler_info().get("workers", {})))
        self.address = self._client.scheduler.address
        self._setup = self._client.scatter(setup, broadcast=True)

    def run(self, tasks: list[PointTask]) -> Iterator[PointRow]:
        from distributed import as_completed

        futures = [self._client.submit(run_point, self._setup, task, pure=False) for task in tasks]
        by_future = dict(zip(futures, tasks, strict=True))
        for future in as_completed(futures):
            task = by_future[future]
            try:
                yield future.result()
            except Exception as exc:
                yield PointRow(task.index, task.params, STATUS_FAILED, error=f"dask: {exc!r}")

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def terminate(self) -> None:
        self.close()
