"""Accounts stay solvent: a cash account never goes below zero cash nor
holds a negative asset (property over random order streams); a margin
account whose equity reaches zero is liquidated and halted at that step, and
nothing trades after."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.kit import write_bars, write_strategy
from tidemark.adapters.backtest import run_backtest
from tidemark.core.config import RunConfig, resolve
from tidemark.core.engine import Engine, StrategySlot
from tidemark.core.events import Bar, Event, OrderFilled, PositionChanged, TradingHalted
from tidemark.core.instruments import spot
from tidemark.core.series import InstrumentSeries, MarketSeries
from tidemark.core.strategy import from_namespace

HOUR = 3_600_000_000_000
START = 1_700_000_000_000_000_000


def test_equity_at_zero_liquidates_and_halts_the_margin_account(tmp_path: Path) -> None:
    # 10x: 100 units at 100 is 10,000 notional on 1,000 equity. The close at 90
    # takes equity to 1,000 - 100 * 10 = 0: everything is closed at 90 and the
    # account halts; the later buys are refused and the price's recovery to
    # 110 does not touch the account any more.
    data = write_bars(tmp_path / "X.csv", [100, 100, 95, 90, 110, 110], opens=[100, 100, 100, 95, 90, 110])
    strategy = write_strategy(
        tmp_path / "all_in.py",
        """
        def schema(): return {"id": "all_in"}
        def on_bar(ctx, i):
            ctx.buy(100 if i == 0 else 1)
        """,
    )
    result = run_backtest(str(strategy), data=[data], initial_cash=1_000, leverage=10, journal=tmp_path / "j.journal")
    fills = result.fills
    assert list(fills["liquidity"]) == ["taker", "liquidation"]
    assert list(fills["price"]) == [100.0, 90.0]
    assert list(fills["fee"]) == [0.0, 0.0]
    halt_time = result.equity.index[3]
    assert result.metrics["ruined_at"] == halt_time.isoformat()
    assert result.metrics["final_equity"] == 0.0
    assert list(result.equity["equity"]) == [1_000.0, 1_000.0, 500.0, 0.0, 0.0, 0.0]
    for name in ("max_drawdown", "sharpe", "sortino", "calmar", "annualized_return"):
        assert math.isnan(result.metrics[name]), name
    assert result.rejections_by_reason() == {"insufficient_margin": 2, "trading_halted": 3}
    assert any("trading halted at" in w for w in result.warnings)
    assert any("equity reached zero at" in w for w in result.warnings)


def _series(closes: list[float], opens: list[float]) -> MarketSeries:
    n = len(closes)
    close = np.asarray(closes)
    open_ = np.asarray(opens)
    series = InstrumentSeries(
        "X", HOUR, open_, np.maximum(open_, close), np.minimum(open_, close), close, np.full(n, 1e6), np.ones(n, bool)
    )
    return MarketSeries(START + HOUR * np.arange(1, n + 1, dtype=np.int64), {"X": series})


def _run(config: RunConfig, market: MarketSeries, plan: list[list[tuple[str, float, str, float]]]) -> list[Event]:
    """Run a strategy that sends ``plan[i]`` (side, size, type, price factor) at step i."""

    def on_bar(ctx: Any, i: int) -> None:
        for side, size, kind, factor in plan[i]:
            price = ctx.close[-1] * factor if kind != "market" else None
            if kind == "stop":
                ctx.order(side, size, type="stop", trigger=price)
            else:
                ctx.order(side, size, price, type=kind)

    loaded = from_namespace({"schema": lambda: {"id": "random"}, "on_bar": on_bar}, "", "random.py")
    engine = Engine(config, [StrategySlot(loaded, "random", ["X"], {})], market)
    seen: list[Event] = []
    for cls in (OrderFilled, PositionChanged, TradingHalted):
        engine.bus.subscribe(cls, seen.append)
    checks: list[tuple[float, dict[str, float]]] = []

    def check(_: PositionChanged) -> None:
        pf = engine.portfolio
        checks.append((pf.cash_in("USD"), {k[1]: p.quantity for k, p in pf.positions.items()}))

    engine.bus.subscribe(PositionChanged, check)

    def step_close(bar: Bar) -> None:  # after every actor and the strategy
        pf = engine.portfolio
        steps.append((bar.ts, pf.equity(), sum(abs(p.quantity) for p in pf.positions.values())))

    steps: list[tuple[int, float, float]] = []
    engine.bus.subscribe(Bar, step_close, late=True)
    engine.feed(spot("X").__class__(START, "X", kind="spot", base="X", quote="USD", settle="USD"))
    engine.feed_all(list(market.bars()))
    engine.finish()
    seen.append(steps)  # type: ignore[arg-type]
    seen.append(checks)  # type: ignore[arg-type]
    return seen


orders = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.floats(0.1, 30.0),
        st.sampled_from(["market", "limit", "stop"]),
        st.floats(0.9, 1.1),
    ),
    max_size=3,
)


@settings(max_examples=60)
@given(data=st.data(), n=st.integers(5, 40))
def test_a_cash_account_never_spends_cash_it_does_not_have(data: st.DataObject, n: int) -> None:
    moves = data.draw(st.lists(st.floats(-0.08, 0.08), min_size=n, max_size=n))
    closes = list(100.0 * np.exp(np.cumsum(moves)))
    gaps = data.draw(st.lists(st.floats(-0.05, 0.05), min_size=n, max_size=n))
    opens = [closes[0], *(c * (1 + g) for c, g in zip(closes[:-1], gaps[1:], strict=True))]
    plan = [data.draw(orders) for _ in range(n)]
    config = resolve(RunConfig(initial_cash=1_000.0, commission_bps=10, slippage_bps=5))
    seen = _run(config, _series(closes, opens), plan)
    checks = seen.pop()
    seen.pop()
    for cash, positions in checks:  # type: ignore[union-attr]
        assert cash >= -1e-9
        assert all(q >= -1e-12 for q in positions.values())


@settings(max_examples=60)
@given(data=st.data(), n=st.integers(5, 40))
def test_a_margin_account_never_trades_on_below_zero_equity(data: st.DataObject, n: int) -> None:
    moves = data.draw(st.lists(st.floats(-0.15, 0.15), min_size=n, max_size=n))
    closes = list(100.0 * np.exp(np.cumsum(moves)))
    plan = [data.draw(orders) for _ in range(n)]
    config = resolve(RunConfig(initial_cash=1_000.0, leverage=20.0, borrow_rate=0.1, commission_bps=10))
    market = _series(closes, [closes[0], *closes[:-1]])
    engine_events = _run(config, market, plan)
    engine_events.pop()
    steps: list[tuple[int, float, float]] = engine_events.pop()  # type: ignore[assignment]
    halts = [e for e in engine_events if isinstance(e, TradingHalted)]
    assert len(halts) <= 1
    ruined = [ts for ts, equity, _ in steps if equity <= 0.0]
    if not ruined:
        assert halts == []
        return
    (halt,) = halts  # equity reached zero at a step close: the halt is at that step
    assert halt.ts == ruined[0]
    assert [e for e in engine_events if isinstance(e, OrderFilled) and e.ts > halt.ts] == []
    after = [(equity, held) for ts, equity, held in steps if ts >= halt.ts]
    assert all(held == 0.0 for _, held in after)
    assert len({equity for equity, _ in after}) == 1  # nothing moves it any more


def test_property_runs_see_a_refusal(tmp_path: Path) -> None:
    """The property above is not vacuous: an order beyond the cash is refused."""
    config = resolve(RunConfig(initial_cash=1_000.0))
    seen = _run(config, _series([100.0] * 5, [100.0] * 5), [[("buy", 50.0, "market", 1.0)], [], [], [], []])
    seen.pop()
    seen.pop()
    assert not [e for e in seen if isinstance(e, OrderFilled)]
