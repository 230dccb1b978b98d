"""The projections: the equity curve values every time step exactly as the
run's accounting does step by step (it values long stretches at once), and
bars read as columns give the same frames as bars decoded one by one."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest

from tidemark.adapters.backtest import SAMPLE_DIR, Result, run_backtest
from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.events import Bar, FundingApplied, InstrumentDefinition, InterestCharged, OrderFilled, RunStarted
from tidemark.journal import process_writer, projections
from tidemark.journal.blocks import DecodedBlock
from tidemark.journal.projections import Projections
from tidemark.journal.reader import JournalReader

SAMPLES = SAMPLE_DIR
RUNS = {
    "one instrument": dict(strategy="ema_cross", data=[SAMPLES / "SYNTH_BTC-1h.csv"]),
    "two instruments": dict(
        strategy="sma_cross", data=[SAMPLES / "SYNTH_BTC-1h.csv", SAMPLES / "SYNTH_ETH-1h.csv"], params={"fast": 5}
    ),
    "shorts, every bar": dict(
        strategy="ema_cross",
        data=[SAMPLES / "SYNTH_ETH-1h.csv"],
        params={"long_only": False, "size": 0.5},
        wake=False,
        account="margin",
        borrow_rate=0.05,  # spot shorts on a loan: interest charged daily and at each change
    ),
    "many blocks": dict(strategy="ema_cross", data=["minutes"], params={"fast": 3, "slow": 7}),
    "many blocks, two instruments": dict(
        strategy=None,
        data=["minutes", "minutes2"],
        strategies=[  # one strategy per instrument: both hold positions, each stretch moves both marks
            {"strategy": "sma_cross", "symbols": ["SYN"], "params": {"fast": 3, "slow": 9}},
            {"strategy": "ema_cross", "symbols": ["SYN2"], "params": {"fast": 4, "slow": 11, "long_only": False}},
        ],
        account="margin",
        borrow_rate=0.05,
    ),
}


@pytest.fixture(scope="module")
def minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30,000 one-minute bars (a seeded random walk): a journal of several
    blocks, most of them read as columns. A second instrument's minutes
    (another walk) are beside it, as ``SYN2.csv``."""
    folder = tmp_path_factory.mktemp("data")
    random_walk(11).to_csv(folder / "SYN2.csv", index=False)
    random_walk(7).to_csv(folder / "SYN.csv", index=False)
    return folder / "SYN.csv"


def random_walk(seed: int, n: int = 30_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    spread = np.abs(rng.normal(0.0, 0.001, n)) * close
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": 1.0,
        }
    )


def run(name: str, path: Path, minutes: Path) -> Result:
    kwargs = dict(RUNS[name])
    files = {"minutes": minutes, "minutes2": minutes.with_name("SYN2.csv")}
    kwargs["data"] = [files.get(item, item) for item in kwargs["data"]]  # type: ignore[union-attr,call-overload]
    return run_backtest(kwargs.pop("strategy"), journal=path, **kwargs)  # type: ignore[arg-type]


def stepwise_equity(path: Path) -> np.ndarray:
    """Equity, cash, exposure and in-market at each step's close, the
    accounting run event by event and valued at every step."""
    rows: list[tuple[int, float, float, float, float]] = []
    with JournalReader(path) as reader:
        header = reader.event(1)
        assert isinstance(header, RunStarted)
        config = msgspec.json.decode(header.config)
        portfolio = Portfolio(float(config["initial_cash"]), config["currency"])
        pending: int | None = None

        def close(ts: int) -> None:
            exposed = 1.0 if any(True for _ in portfolio.open_positions()) else 0.0
            rows.append((ts, portfolio.equity(), portfolio.cash(), portfolio.gross_exposure(), exposed))

        for _, event in reader.events():
            if pending is not None and event.ts > pending:
                close(pending)
                pending = None
            if isinstance(event, Bar):
                portfolio.marks[event.instrument] = event.close
                portfolio.update_rate(event.instrument, event.close)
                if event.last:
                    pending = event.ts
            elif isinstance(event, OrderFilled):
                portfolio.apply_fill(event)
            elif isinstance(event, InstrumentDefinition):
                portfolio.add_instrument(event)
            elif isinstance(event, FundingApplied):
                portfolio.apply_funding(event)
            elif isinstance(event, InterestCharged):
                portfolio.apply_interest(event)
        if pending is not None:
            close(pending)
    return np.array(rows, dtype=object)


@pytest.mark.parametrize("name", list(RUNS))
def test_the_equity_curve_is_the_step_by_step_valuation(name: str, tmp_path: Path, minutes: Path) -> None:
    path = tmp_path / "run.journal"
    result = run(name, path, minutes)
    assert len(result.fills) > 10
    expected = stepwise_equity(path)
    equity = Result.from_journal(path).equity
    assert equity.index.asi8.tolist() == expected[:, 0].tolist()
    for i, column in enumerate(("equity", "cash", "exposure", "in_market"), start=1):
        assert equity[column].tolist() == expected[:, i].tolist(), column  # exactly, float for float


def build(path: Path) -> Projections:
    with JournalReader(path) as reader:
        return Projections.build(reader)


@pytest.mark.parametrize("name", list(RUNS))
def test_bars_read_as_columns_give_the_frames_of_bars_decoded_one_by_one(
    name: str, tmp_path: Path, minutes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.journal"
    run(name, path, minutes)
    from_columns = build(path)
    monkeypatch.setattr(projections.BarLayout, "of", staticmethod(lambda bar: None))  # every bar decoded
    decoded = build(path)
    assert len(from_columns.equity) > 3000
    for frame in ("equity", "orders", "fills", "trades", "positions", "rejections", "funding"):
        pd.testing.assert_frame_equal(getattr(from_columns, frame), getattr(decoded, frame), check_exact=True)
    assert list(from_columns.bars) == list(decoded.bars)
    for instrument, bars in from_columns.bars.items():
        pd.testing.assert_frame_equal(bars, decoded.bars[instrument], check_exact=True)


@pytest.mark.parametrize("name", ["one instrument", "many blocks, two instruments"])
def test_the_bars_are_the_data_the_run_saw(name: str, tmp_path: Path, minutes: Path) -> None:
    result = run(name, tmp_path / "run.journal", minutes)
    files = {
        "one instrument": [SAMPLES / "SYNTH_BTC-1h.csv"],
        "many blocks, two instruments": [minutes, minutes.with_name("SYN2.csv")],
    }
    assert len(result.bars) == len(files[name])
    for data, bars in zip(files[name], result.bars.values(), strict=True):
        csv = pd.read_csv(data)
        step = pd.Timedelta("1h" if "1h" in data.name else "1min")
        assert bars.index.tolist() == (pd.to_datetime(csv["date"]) + step).tolist()  # close times
        for column in ("open", "high", "low", "close", "volume"):
            assert bars[column].tolist() == csv[column].tolist(), column


def test_an_open_trade_has_no_exit_time_and_no_duration(tmp_path: Path) -> None:
    data = SAMPLES / "SYNTH_BTC-1h.csv"
    trades = run_backtest("ema_cross", data=[data], journal=tmp_path / "run.journal").trades
    assert trades["open"].iloc[-1] and not trades["open"].iloc[:-1].any()
    assert pd.isna(trades["exit_time"].iloc[-1]) and pd.isna(trades["duration"].iloc[-1])
    closed = trades.iloc[:-1]
    assert (closed["duration"] == closed["exit_time"] - closed["entry_time"]).all()
    assert str(trades["exit_time"].dtype) == "datetime64[ns, UTC]" and trades["duration"].dtype.kind == "m"


def test_a_run_without_orders_has_timestamp_columns(tmp_path: Path) -> None:
    idle = tmp_path / "idle.py"
    idle.write_text('def schema():\n    return {"id": "idle", "inputs": {}}\n\n\ndef on_bar(ctx, i):\n    pass\n')
    result = run_backtest(str(idle), data=[SAMPLES / "SYNTH_BTC-1h.csv"], journal=tmp_path / "run.journal")
    assert result.orders.empty and result.trades.empty
    assert str(result.orders["submitted"].dtype) == "datetime64[ns, UTC]"
    assert str(result.trades["entry_time"].dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize("name", ["shorts, every bar", "many blocks"])
def test_trip_excursions_are_the_extremes_of_the_bars_held(name: str, tmp_path: Path, minutes: Path) -> None:
    path = tmp_path / "run.journal"
    trades = run(name, path, minutes).trades
    with JournalReader(path) as reader:
        bars = [event for _, event in reader.events(kinds=["bar"])]
    times = np.array([bar.ts for bar in bars])
    highs, lows = np.array([bar.high for bar in bars]), np.array([bar.low for bar in bars])
    assert trades["side"].nunique() == (2 if name.startswith("shorts") else 1)
    for trade in trades.itertuples():
        end = times[-1] if trade.open else trade.exit_time.value
        held = (times > trade.entry_time.value) & (times <= end)  # bars closing while the trip was open
        assert trade.bars == held.sum()
        if not held.any():
            assert trade.mae == trade.mfe == 0.0
            continue
        top, bottom = highs[held].max(), lows[held].min()
        sign = 1.0 if trade.side == "long" else -1.0
        best, worst = (top, bottom) if sign > 0 else (bottom, top)
        assert trade.mfe == max(sign * (best - trade.entry_price) * trade.size, 0.0)
        assert trade.mae == min(sign * (worst - trade.entry_price) * trade.size, 0.0)


RESULT_FRAMES = ("equity", "orders", "fills", "trades", "positions", "rejections", "funding", "interest", "counters")


@pytest.mark.parametrize("name", list(RUNS))
def test_the_writer_builds_the_results_that_reading_the_journal_back_gives(
    name: str, tmp_path: Path, minutes: Path
) -> None:
    path = tmp_path / "run.journal"
    built = run(name, path, minutes)  # by the writer's process, block by block as it committed them
    assert built.check is None  # nothing was read back
    read = Result.from_journal(path)
    assert read.check is not None and read.check.report is not None and read.check.report.ok
    for frame in RESULT_FRAMES:
        pd.testing.assert_frame_equal(getattr(built, frame), getattr(read, frame), check_exact=True)
    assert list(built.bars) == list(read.bars)
    for instrument, bars in built.bars.items():
        pd.testing.assert_frame_equal(bars, read.bars[instrument], check_exact=True)
    assert (built.head, built.events, built.run_id) == (read.head, read.events, read.run_id)
    assert built.metrics == pytest.approx(read.metrics, nan_ok=True) and built.metrics.keys() == read.metrics.keys()
    assert {k: v for k, v in built.metrics.items() if v == v} == {k: v for k, v in read.metrics.items() if v == v}
    assert built.warnings == read.warnings


def test_the_writer_builds_a_coin_settled_runs_results_as_read_back(tmp_path: Path) -> None:
    """cash_carry on its bundled sample: spot, two inverse quarterlies
    settled in BTC (rates from the spot), TWAP children, a roll, funding-free
    coin fees; the writer's frames are the read-back ones exactly."""
    built = run_backtest("cash_carry", journal=tmp_path / "carry.journal")
    read = Result.from_journal(tmp_path / "carry.journal")
    assert len(built.fills) > 10 and built.trades["currency"].nunique() > 1
    for frame in RESULT_FRAMES:
        pd.testing.assert_frame_equal(getattr(built, frame), getattr(read, frame), check_exact=True)
    pd.testing.assert_frame_equal(built.coin_pnl(), read.coin_pnl(), check_exact=True)


def test_a_writer_that_cannot_build_the_results_leaves_them_to_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, feed = os.getpid(), projections.Projector.feed

    def broken(self: projections.Projector, block: DecodedBlock) -> None:
        if os.getpid() != here:  # in the writer's process (forked from this one)
            raise RuntimeError("projection failed")
        feed(self, block)

    monkeypatch.setattr(projections.Projector, "feed", broken)
    # The broken feed reaches the writer only if it is forked from here (a thread
    # left by an earlier test would make it spawn): fork it, as a script would.
    fork = multiprocessing.get_context("fork")
    monkeypatch.setattr(process_writer, "child_context", lambda: fork)
    result = run_backtest("ema_cross", data=[SAMPLES / "SYNTH_BTC-1h.csv"], journal=tmp_path / "run.journal")
    assert result.check is not None and result.check.report is not None and result.check.report.ok  # read back
    assert len(result.fills) > 10
