"""The equity curve projection values every time step exactly as the run's
accounting does step by step (it values long stretches at once)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from adapters.backtest import Result, run_backtest
from core.events import Bar, FundingApplied, InstrumentDefinition, OrderFilled, RunStarted
from core.portfolio import Portfolio
from journal.reader import JournalReader

SAMPLES = Path(__file__).resolve().parents[2] / "adapters" / "sample_data"
RUNS = {
    "one instrument": dict(strategy="ema_cross", data=[SAMPLES / "SYNTH_BTC-1h.csv"]),
    "two instruments": dict(
        strategy="sma_cross", data=[SAMPLES / "SYNTH_BTC-1h.csv", SAMPLES / "SYNTH_ETH-1h.csv"], params={"fast": 5}
    ),
    "shorts, every bar": dict(
        strategy="ema_cross", data=[SAMPLES / "SYNTH_ETH-1h.csv"], params={"long_only": False, "size": 0.5}, wake=False
    ),
}


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
        if pending is not None:
            close(pending)
    return np.array(rows, dtype=object)


@pytest.mark.parametrize("name", list(RUNS))
def test_the_equity_curve_is_the_step_by_step_valuation(name: str, tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    kwargs = dict(RUNS[name])
    result = run_backtest(kwargs.pop("strategy"), journal=path, **kwargs)  # type: ignore[arg-type]
    assert len(result.fills) > 10
    expected = stepwise_equity(path)
    equity = Result.from_journal(path).equity
    assert equity.index.asi8.tolist() == expected[:, 0].tolist()
    for i, column in enumerate(("equity", "cash", "exposure", "in_market"), start=1):
        assert equity[column].tolist() == expected[:, i].tolist(), column  # exactly, float for float
