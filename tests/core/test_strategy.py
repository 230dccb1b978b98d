"""The strategy contract and ctx, exercised through the public run API."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tidemark.adapters.backtest import SAMPLE_DIR, run_backtest
from tidemark.core.strategy import StrategyError, indicators, load_source
from tidemark.core.strategy.params import ParamError, resolve

SCHEMA = {
    "id": "t",
    "inputs": {
        "n": {"type": "int", "default": 5, "min": 1, "max": 10},
        "x": {"type": "float", "default": 0.5, "min": 0.0, "max": 1.0},
        "on": {"type": "bool", "default": True},
        "mode": {"type": "select", "default": "a", "options": ["a", "b"]},
    },
}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"n": 11}, "above max"),
        ({"n": 0}, "below min"),
        ({"n": 2.5}, "whole number"),
        ({"x": "abc"}, "must be float"),
        ({"on": "maybe"}, "true or false"),
        ({"mode": "c"}, "one of"),
        ({"nope": 1}, "unknown parameter"),
    ],
)
def test_params_are_validated_with_clear_errors(given: dict, message: str) -> None:
    with pytest.raises(ParamError, match=message):
        resolve(SCHEMA, given)


def test_params_resolve_defaults_and_coerce() -> None:
    assert resolve(SCHEMA, {"n": "7", "on": "false"}) == {"mode": "a", "n": 7, "on": False, "x": 0.5}


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_arrays_never_reveal_the_future(tmp_path: Path, sample_csv: Path) -> None:
    path = write(
        tmp_path,
        "peek.py",
        """
        import numpy as np
        def schema(): return {"id": "peek"}
        def on_init(ctx): ctx.state["lengths"] = []
        def on_bar(ctx, i):
            assert len(ctx.close) == i + 1 and len(ctx.time) == i + 1
            assert ctx.close[-1] == ctx.close[i]
            assert len(ctx.ind.ema(ctx.close, 5)) == i + 1
            assert not ctx.close.flags.writeable
            ctx.state["lengths"].append(len(ctx.high))
        def on_finish(ctx):
            assert ctx.state["lengths"] == list(range(1, len(ctx.state["lengths"]) + 1))
            ctx.log.info("checked %d bars" % len(ctx.state["lengths"]))
    """,
    )
    result = run_backtest(str(path), data=[sample_csv], journal=tmp_path / "j.journal")
    assert result.metrics["trades"] == 0


def test_indicators_are_computed_once_per_run(
    tmp_path: Path, sample_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = indicators.FUNCTIONS["ema"]

    def counting(x: np.ndarray, n: int) -> np.ndarray:
        calls.append(len(x))
        return original(x, n)

    monkeypatch.setitem(indicators.FUNCTIONS, "ema", counting)
    run_backtest("ema_cross", data=[sample_csv], journal=tmp_path / "j.journal")
    assert calls == [4000, 4000]  # fast and slow, each once over the whole series


def test_class_based_strategy_and_attribution(tmp_path: Path, sample_csv: Path) -> None:
    path = write(
        tmp_path,
        "cls.py",
        """
        from tidemark.core.strategy import Strategy
        class Flipper(Strategy):
            @classmethod
            def schema(cls):
                return {"id": "flipper", "inputs": {"every": {"type": "int", "default": 100, "min": 1}}}
            def on_bar(self, ctx, i):
                if i % ctx.params["every"] == 0:
                    ctx.target_percent(0.1 if (i // ctx.params["every"]) % 2 == 0 else 0.0)
            def on_trade(self, ctx, fill):
                ctx.state["fills"] = ctx.state.get("fills", 0) + 1
    """,
    )
    config = {
        "strategies": [
            {"strategy": str(path), "params": {"every": 200}},
            {"strategy": "ema_cross", "params": {"size": 0.1}},
        ],
        "initial_cash": 100000,
    }
    result = run_backtest(data=[sample_csv], config=config, journal=tmp_path / "j.journal")
    assert set(result.fills["strategy"]) == {"flipper", "ema_cross"}
    by_strategy = result.trades.groupby("strategy").size().to_dict()
    assert by_strategy["flipper"] >= 9 and by_strategy["ema_cross"] > 10


def test_multi_symbol_access_and_target_weights(tmp_path: Path) -> None:
    samples = sorted(SAMPLE_DIR.glob("*.csv"))
    path = write(
        tmp_path,
        "rot.py",
        """
        import numpy as np
        def schema(): return {"id": "rotation"}
        def on_bar(ctx, i):
            if i < 50 or i % 168:
                return
            scores = {s: ctx.data[s].close[-1] / ctx.data[s].close[-50] for s in ctx.symbols}
            best = max(sorted(scores), key=scores.get)
            ctx.target_weights({best: 0.5})
    """,
    )
    result = run_backtest(str(path), data=samples, journal=tmp_path / "j.journal", initial_cash=100000)
    assert set(result.fills["instrument"]) == {"SYNTH_BTC", "SYNTH_ETH"}
    assert result.metrics["exposure_time"] > 0.5


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def on_bar(ctx, i): pass\n", "define schema"),
        ("def schema(): return {'id': 'x'}\ndef on_bar(ctx, i): pass\nsyntax error here\n", "cannot load"),
        ("def schema(): return {'inputs': {}}\ndef on_bar(ctx, i): pass\n", "'id'"),
    ],
)
def test_broken_strategies_are_reported(source: str, message: str) -> None:
    with pytest.raises((StrategyError, ParamError), match=message):
        load_source(source, "broken.py")


def test_run_config_sizing_drives_size_default(tmp_path: Path, sample_csv: Path) -> None:
    path = write(
        tmp_path,
        "sized.py",
        """
        def schema(): return {"id": "sized"}
        def on_bar(ctx, i):
            if i == 10:
                ctx.buy(ctx.size.default())
    """,
    )
    config = {"initial_cash": 100_000, "sizing": {"type": "percent_equity", "value": 0.25}}
    result = run_backtest(str(path), data=[sample_csv], config=config, journal=tmp_path / "j.journal")
    order = result.orders.iloc[0]
    close_at_signal = float(pd.read_csv(sample_csv)["close"].iloc[10])
    assert order["quantity"] == pytest.approx(100_000 * 0.25 / close_at_signal)


def _outputs(path: Path) -> list[tuple[str, bytes]]:
    """Every record after the header, as (kind, payload): what the run did."""
    from tidemark.core.events import TAGS, RunStarted
    from tidemark.journal.reader import JournalReader

    reader = JournalReader(path)
    try:
        return [(TAGS[type(r.event)], r.payload) for r in reader.records() if not isinstance(r.event, RunStarted)]
    finally:
        reader.close()


@pytest.mark.parametrize(
    ("strategy", "params"),
    [
        ("ema_cross", {}),
        ("ema_cross", {"long_only": False, "fast": 5, "slow": 9}),
        ("sma_cross", {"stop_atr": 2.0, "target_atr": 3.0}),
    ],
)
def test_wake_skips_steps_without_changing_what_the_strategy_does(
    tmp_path: Path, sample_csv: Path, strategy: str, params: dict
) -> None:
    shorts = {"account": "margin", "borrow_rate": 0.05}  # ema_cross reverses into spot shorts
    gated = run_backtest(strategy, data=[sample_csv], params=params, journal=tmp_path / "gated.journal", **shorts)
    every = run_backtest(
        strategy, data=[sample_csv], params=params, journal=tmp_path / "every.journal", wake=False, **shorts
    )
    assert gated.metrics["trades"] > 5
    assert _outputs(tmp_path / "gated.journal") == _outputs(tmp_path / "every.journal")
    assert gated.metrics["final_equity"] == every.metrics["final_equity"]


def test_on_bar_runs_only_where_wake_is_true(tmp_path: Path, sample_csv: Path) -> None:
    path = write(
        tmp_path,
        "sparse.py",
        """
        import numpy as np
        def schema(): return {"id": "sparse"}
        def on_init(ctx): ctx.state["seen"] = []
        def wake(ctx):
            return np.arange(len(ctx.close)) % 7 == 3
        def on_bar(ctx, i):
            assert len(ctx.close) == i + 1
            ctx.state["seen"].append(i)
        def on_finish(ctx):
            seen = ctx.state["seen"]
            assert seen == list(range(3, len(ctx.close), 7)), seen[:5]
            ctx.log.info("woke %d times" % len(seen))
        """,
    )
    result = run_backtest(str(path), data=[sample_csv], journal=tmp_path / "j.journal")
    assert result.metrics["trades"] == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("return np.roll(ctx.close, -1) > ctx.close", "looks ahead"),
        ("return ctx.close > ctx.close[-1]", "looks ahead"),
        ("return np.ones(3, dtype=bool)", "must return"),
        ("return ctx.close", "must return"),
    ],
)
def test_a_wake_mask_that_looks_ahead_or_has_the_wrong_shape_is_refused(
    tmp_path: Path, sample_csv: Path, body: str, message: str
) -> None:
    path = write(
        tmp_path,
        "bad_wake.py",
        f"""
        import numpy as np
        def schema(): return {{"id": "bad_wake"}}
        def wake(ctx):
            {body}
        def on_bar(ctx, i):
            pass
        """,
    )
    with pytest.raises(StrategyError, match=message):
        run_backtest(str(path), data=[sample_csv], journal=tmp_path / "j.journal")
