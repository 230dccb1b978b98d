"""Benchmark: the canonical EMA(12/26) cross on N one-minute bars.

Runs, each in its own child process (so each peak RSS is its own), in one
invocation:

* tidemark with the built-in ``ema_cross`` (journal on, hash chain
  included); its ``wake`` mask skips the bars where no cross can happen;
* tidemark with ``wake = false`` (``--every-bar``): ``on_bar`` at every bar,
  the speed of a strategy that declares no mask;
* ``tidemark replay --check`` of the first run's journal (verify, in a
  child process, and replay, as the command does);
* backtesting.py, whose ``run()`` also computes its stats (compared with
  tidemark's run plus building its results from the journal, as
  ``tidemark backtest`` does before printing its summary).

The rounds are interleaved and each figure is the best of ``--repeat``
rounds, because this 2-core machine drifts by up to ~30% between runs. The
script prints bars/s, ratios and peak memory, and says whether the engines
agree on final equity and whether the two tidemark runs agree on every fill.

    python scripts/bench_backtest.py            # 1,000,000 bars, best of 2
    python scripts/bench_backtest.py --bars 100000 --repeat 3

``--whole`` times what a user times instead: whole processes on the same
CSV file, start to exit. ``tidemark backtest --data FILE`` (journal, hash
chain, results, summary and HTML report), the same with ``--every-bar``,
and a script that imports backtesting.py, reads the CSV with pandas and
runs the same strategy (its ``run()`` computes its stats; with
``--peer-plot`` it also writes its HTML plot). Peak memory is each whole
process tree's largest resident set. The tidemark runs read the CSV through
the parsed-data cache (a folder of the benchmark's own, warmed by the first
run); "first run of the file" times a run with an empty cache, which parses.
tidemark's bytecode is compiled first, as an installed package's is.

    python scripts/bench_backtest.py --whole --bars 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def synthetic_minutes(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.Generator(np.random.PCG64(seed))
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    wiggle = np.abs(rng.normal(0, 0.0005, n)) * close
    high = np.maximum(open_, close) + wiggle
    low = np.minimum(open_, close) - wiggle
    volume = rng.lognormal(5, 0.5, n)
    index = pd.date_range("2020-01-01", periods=n, freq="1min")
    return pd.DataFrame({"Open": open_, "High": high, "Low": low, "Close": close, "Volume": volume}, index=index)


def run_tidemark(n: int, journal: Path, every_bar: bool = False) -> dict[str, object]:
    from tidemark.adapters.backtest import Result, build_config, run_async
    from tidemark.core.ids import content_id
    from tidemark.core.series import InstrumentSeries, MarketSeries

    frame = synthetic_minutes(n)
    minute = 60_000_000_000
    timeline = frame.index.as_unit("ns").asi8 + minute  # pandas 3 indexes default to microseconds
    series = InstrumentSeries(
        "SYN",
        minute,
        *(frame[c].to_numpy(copy=True) for c in ("Open", "High", "Low", "Close", "Volume")),
        np.ones(n, dtype=bool),
    )
    market = MarketSeries(timeline, {"SYN": series})
    config = build_config(
        None, strategy="ema_cross", initial_cash=1_000_000, commission_bps=4, symbols=["SYN"], wake=not every_bar
    )
    start = time.perf_counter()
    asyncio.run(run_async(config, market=market, fingerprints={"SYN": "synthetic"}, journal=journal, overwrite=True))
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    result = Result.from_journal(journal)  # what `tidemark backtest` then prints its summary from
    results_seconds = time.perf_counter() - start
    return {
        "results_seconds": results_seconds,
        "bars_per_s": n / elapsed,
        "seconds": elapsed,
        "fills": len(result.fills),
        "fills_digest": content_id(result.fills[["seq", "ts", "side", "quantity", "price", "fee"]].to_json()),
        "final_equity": result.metrics["final_equity"],
        "events": result.events,
        "journal_mb": journal.stat().st_size / 1e6,
    }


def run_replay(journal: Path, n: int) -> dict[str, object]:
    """What ``tidemark replay --check`` does: verify and replay."""
    from tidemark.adapters.backtest import replay_verified

    start = time.perf_counter()
    checked = replay_verified(journal)
    elapsed = time.perf_counter() - start
    events = checked.replay.events if checked.replay is not None else 0
    return {"ok": checked.ok, "bars_per_s": n / elapsed, "seconds": elapsed, "events": events}


def run_backtesting_py(n: int, csv: str = "", plot: str = "") -> dict[str, object]:
    import warnings

    from backtesting import Backtest, Strategy

    warnings.simplefilter("ignore")

    def ema(values: np.ndarray, span: int) -> np.ndarray:
        out = pd.Series(values).ewm(span=span, adjust=False).mean().to_numpy(copy=True)
        out[:25] = np.nan
        return out

    class EmaCross(Strategy):
        def init(self) -> None:
            self.fast = self.I(ema, self.data.Close, 12)
            self.slow = self.I(ema, self.data.Close, 26)

        def next(self) -> None:
            f0, f1, s0, s1 = self.fast[-2], self.fast[-1], self.slow[-2], self.slow[-1]
            if f0 <= s0 and f1 > s1:
                if not self.position:
                    self.buy(size=1)
            elif f0 >= s0 and f1 < s1:
                self.position.close()

    frame = pd.read_csv(csv, index_col=0, parse_dates=True) if csv else synthetic_minutes(n)
    start = time.perf_counter()
    backtest = Backtest(frame, EmaCross, cash=1_000_000, commission=0.0004, exclusive_orders=True)
    stats = backtest.run()
    elapsed = time.perf_counter() - start
    if plot:
        backtest.plot(filename=plot, open_browser=False)
    trades = stats._trades
    fills = 2 * len(trades) + (1 if stats["_trades"] is not None and stats["# Trades"] == len(trades) and False else 0)
    return {
        "bars_per_s": n / elapsed,
        "seconds": elapsed,
        "closed_trades": len(trades),
        "final_equity": float(stats["Equity Final [$]"]),
        "fills_closed": fills,
    }


def child(args: argparse.Namespace) -> None:
    """One engine run in this (child) process; prints its figures as JSON."""
    if args.engine == "tidemark":
        out = run_tidemark(args.bars, Path(args.journal))
    elif args.engine == "every-bar":
        out = run_tidemark(args.bars, Path(args.journal), every_bar=True)
    elif args.engine == "replay":
        out = run_replay(Path(args.journal), args.bars)
    elif args.engine == "backtesting-csv":
        out = run_backtesting_py(args.bars, args.csv, args.plot)
    else:
        out = run_backtesting_py(args.bars)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # tidemark's helper process: the journal writer of a run, verify of a replay
    out["helper_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(out))


def spawn(engine: str, bars: int, journal: Path) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", "--engine", engine, "--bars", str(bars), "--journal", str(journal)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0"}
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Wall seconds and peak memory (MB) of ``cmd`` as a whole process tree,
    measured from a wrapper process of its own (so each peak is its own)."""
    wrapper = (
        "import json, resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "print(json.dumps({'seconds': time.perf_counter() - start,"
        " 'peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0", **(env or {})},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def whole(args: argparse.Namespace) -> None:
    """Whole processes on one CSV file: what a user times."""
    tidemark = str(Path(sys.executable).with_name("tidemark"))
    # An installed tidemark has its bytecode, as backtesting.py and pandas
    # do; an editable checkout run with PYTHONDONTWRITEBYTECODE=1 would
    # compile its modules from source in every timed process.
    compileall.compile_dir(ROOT / "tidemark", quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "minutes.csv"
        frame = synthetic_minutes(args.bars)
        frame.index.name = "date"
        frame.to_csv(csv)
        common = ["--data", str(csv), "--tz", "UTC", "--strategy", "ema_cross", "--cash", "1000000"]
        common += ["--commission-bps", "4", "--force"]
        cold = [tidemark, "backtest", *common, "--journal", f"{tmp}/cold.journal"]
        commands = {
            "tidemark backtest": [tidemark, "backtest", *common, "--journal", f"{tmp}/wake.journal"],
            "tidemark backtest --every-bar": [
                tidemark,
                "backtest",
                *common,
                "--every-bar",
                "--journal",
                f"{tmp}/every.journal",
            ],
            "backtesting.py": [sys.executable, __file__, "--child", "--engine", "backtesting-csv", "--csv", str(csv)],
        }
        if args.peer_plot:
            commands["backtesting.py + plot"] = [*commands["backtesting.py"], "--plot", f"{tmp}/peer.html"]
        best: dict[str, dict[str, float]] = {}
        # the parsed-CSV cache: its own folder, warmed by the first run; the
        # "first run" line times a run that parses the CSV (an empty cache each time)
        cache = {"TIDEMARK_DATA_CACHE": f"{tmp}/cache"}
        for k in range(args.repeat):
            runs = [("tidemark backtest, first run of the file", cold, {"TIDEMARK_DATA_CACHE": f"{tmp}/cold{k}"})]
            runs += [(label, cmd, cache) for label, cmd in commands.items()]
            for label, cmd, env in runs:
                out = timed(cmd, env)
                if label not in best or out["seconds"] < best[label]["seconds"]:
                    best[label] = out
    print(
        f"whole processes, {args.bars:,} one-minute bars from one CSV ({csv.name}), EMA 12/26 cross, "
        f"next-open fills, 4 bp commission; best of {args.repeat} interleaved rounds"
    )
    for label, out in best.items():
        print(f"{label:<32}{out['seconds']:8.2f} s  peak {out['peak_mb']:6.0f} MB")
    peer = best["backtesting.py"]
    for label in ("tidemark backtest", "tidemark backtest --every-bar", "tidemark backtest, first run of the file"):
        print(
            f"speed {label} vs backtesting.py: {peer['seconds'] / best[label]['seconds']:.2f}x"
            f" (backtesting.py's wall time / tidemark's; >1 is faster)"
            f"  memory {best[label]['peak_mb'] / peer['peak_mb']:.2f}x backtesting.py's"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--engine", default="tidemark")
    parser.add_argument("--journal", default="")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; each figure is the best round")
    parser.add_argument("--whole", action="store_true", help="time whole processes on a CSV file")
    parser.add_argument("--peer-plot", action="store_true", help="with --whole: also time backtesting.py's plot")
    parser.add_argument("--csv", default="", help=argparse.SUPPRESS)
    parser.add_argument("--plot", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.whole:
        whole(args)
        return
    engines = ["tidemark", "every-bar", "replay"] + ([] if args.skip_peer else ["backtesting"])
    best: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "bench.journal"
        for _ in range(args.repeat):
            for engine in engines:
                path = Path(tmp) / "every.journal" if engine == "every-bar" else journal
                out = spawn(engine, args.bars, path)
                if engine not in best or float(out["bars_per_s"]) > float(best[engine]["bars_per_s"]):
                    best[engine] = out
    ours, every, again, peer = best["tidemark"], best["every-bar"], best["replay"], best.get("backtesting")
    print(
        f"bars: {args.bars:,} (1-minute, synthetic), EMA 12/26 cross, next-open fills, 4 bp commission; "
        f"best of {args.repeat} interleaved rounds"
    )
    for label, run in (("tidemark (journal on)", ours), ("tidemark --every-bar", every)):
        print(
            f"{label:<24}{run['bars_per_s']:>10,.0f} bars/s  {run['seconds']:7.2f} s  peak {run['peak_rss_mb']:5.0f} MB"
            f" (+ writer {run['helper_peak_mb']:.0f} MB)  events {run['events']:,}  journal {run['journal_mb']:.0f} MB  fills {run['fills']:,}"
            f"  final equity {run['final_equity']:,.4f}"
        )
    print(
        f"{'':<24}results (orders, fills, trades, equity curve, metrics) from the journal: {ours['results_seconds']:.2f} s"
    )
    print(
        f"{'tidemark replay --check':<24}{again['bars_per_s']:>10,.0f} bars/s  {again['seconds']:7.2f} s"
        f"  peak {again['peak_rss_mb']:5.0f} MB (+ verify {again['helper_peak_mb']:.0f} MB)  identical={again['ok']}"
    )
    print(f"wake and every-bar runs give the same fills: {ours['fills_digest'] == every['fills_digest']}")
    if peer is not None:
        print(
            f"{'backtesting.py':<24}{peer['bars_per_s']:>10,.0f} bars/s  {peer['seconds']:7.2f} s"
            f"  peak {peer['peak_rss_mb']:5.0f} MB  closed trades {peer['closed_trades']:,}"
            f"  final equity {peer['final_equity']:,.4f}"
        )
        for label, run in (("tidemark", ours), ("tidemark --every-bar", every)):
            print(f"ratio {label} / backtesting.py: {float(run['bars_per_s']) / float(peer['bars_per_s']):.2f}x")
        # backtesting.py's run() returns its stats; tidemark's results are built from the journal afterwards
        end_to_end = float(ours["seconds"]) + float(ours["results_seconds"])
        print(
            f"ratio tidemark run + results / backtesting.py run (with its stats): "
            f"{float(peer['seconds']) / end_to_end:.2f}x"
        )
        same = abs(float(ours["final_equity"]) - float(peer["final_equity"])) <= 1e-9 * abs(float(peer["final_equity"]))
        print(f"final equity agrees to 1e-9: {same}")
    print(f"replay / run speed: {float(again['bars_per_s']) / float(ours['bars_per_s']):.2f}x")


if __name__ == "__main__":
    main()
