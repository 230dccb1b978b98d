"""The notebook API: a DataFrame and a Strategy class in three lines, the
class's source journaled so the run replays anywhere, no litter."""

from __future__ import annotations

import gc
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tidemark
from tidemark import Strategy
from tidemark.adapters.backtest import replay_verified
from tidemark.adapters.data import DataError
from tidemark.core.strategy import StrategyError
from tidemark.journal.verify import verify

SLOW_DEFAULT = 20


def crossed(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a[-2] <= b[-2] and a[-1] > b[-1])


class SmaCross(Strategy):
    @classmethod
    def schema(cls) -> dict:
        return {"id": "smacross", "inputs": {"slow": {"type": "int", "default": SLOW_DEFAULT, "min": 2, "max": 500}}}

    def on_bar(self, ctx, i) -> None:  # type: ignore[no-untyped-def]
        if i < ctx.params["slow"]:
            return
        fast, slow = ctx.ind.sma(ctx.close, 5), ctx.ind.sma(ctx.close, ctx.params["slow"])
        if crossed(fast, slow) and ctx.position.size == 0:
            ctx.buy(np.floor(10.7))
        elif crossed(slow, fast) and ctx.position.size > 0:
            ctx.flatten()


def frame(n: int = 600, seed: int = 1) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    close = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, n)))
    return pd.DataFrame(
        {"Open": close, "High": close * 1.01, "Low": close * 0.99, "Close": close, "Volume": 1.0}, index=index
    )


def test_a_dataframe_and_a_class_in_three_lines() -> None:
    result = tidemark.backtest(frame(), SmaCross, cash=10_000, commission=0.001, slow=30)
    assert result.metrics["trades"] > 3
    assert result.config["commission_bps"] == pytest.approx(10.0) and result.config["initial_cash"] == 10_000
    (spec,) = result.config["strategies"]
    assert spec["origin"] == "notebook:SmaCross" and spec["params"] == {"slow": 30}
    # the journal holds the class and what it uses from this module: it replays with nothing else
    for needed in ("class SmaCross(Strategy):", "def crossed(", "SLOW_DEFAULT = 20", "import numpy as np"):
        assert needed in spec["source"]
    assert replay_verified(result.journal).ok
    assert result.stats["# Trades"] == result.metrics["trades"]


def test_the_temporary_journal_lives_as_long_as_the_result_and_save_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "notebook"
    work.mkdir()
    monkeypatch.chdir(work)
    result = tidemark.backtest(frame(), SmaCross)
    folder = result.journal.parent
    assert folder != Path.cwd() and verify(result.journal).ok
    kept = result.save(tmp_path / "kept.journal")
    assert result.journal == kept and verify(kept).ok and not folder.exists()
    other = tidemark.backtest(frame(), SmaCross)
    temp = other.journal.parent
    del other
    gc.collect()
    assert not temp.exists()
    assert list(work.iterdir()) == []  # nothing was written beside the notebook


def test_several_symbols_from_a_mapping_and_a_module_strategy(tmp_path: Path) -> None:
    module = types.ModuleType("rotation")
    source = tmp_path / "rotation.py"
    source.write_text(
        "def schema():\n    return {'id': 'rotation'}\n\n\n"
        "def on_bar(ctx, i):\n"
        "    if i and i % 48 == 0:\n"
        "        best = max(ctx.symbols, key=lambda s: ctx.data[s].close[-1] / ctx.data[s].close[-48])\n"
        "        ctx.target_weights({best: 0.5})\n"
    )
    import importlib.util

    spec = importlib.util.spec_from_file_location("rotation", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = tidemark.backtest({"AAA": frame(seed=2), "BBB": frame(seed=3)}, module, journal=tmp_path / "r.journal")
    assert result.config["symbols"] == ["AAA", "BBB"]
    assert set(result.fills["instrument"]) == {"AAA", "BBB"}
    assert result.config["strategies"][0]["origin"] == "module:rotation"


@pytest.mark.parametrize(
    ("keyword", "hint"),
    [("exclusive_orders", "flatten or target_quantity"), ("spread", "slippage_bps"), ("hedging", "two strategies")],
)
def test_backtesting_py_keywords_tidemark_does_differently_are_refused(keyword: str, hint: str) -> None:
    with pytest.raises(TypeError, match=hint):
        tidemark.backtest(frame(), SmaCross, **{keyword: True})


def test_a_class_whose_source_is_lost_is_refused() -> None:
    namespace: dict = {"Strategy": Strategy}
    exec("class Ghost(Strategy):\n    def on_bar(self, ctx, i):\n        pass\n", namespace)
    with pytest.raises(StrategyError, match="cannot recover the source of Ghost"):
        tidemark.backtest(frame(), namespace["Ghost"])


HANDLE = open(__file__)  # noqa: SIM115 - a global no source can recreate


class UsesAFile(Strategy):
    def on_bar(self, ctx, i) -> None:  # type: ignore[no-untyped-def]
        HANDLE.read(1)


def test_what_cannot_be_written_as_source_is_named() -> None:
    with pytest.raises(StrategyError, match="uses 'HANDLE' \\(TextIOWrapper\\)"):
        tidemark.backtest(frame(), UsesAFile)


def test_bad_rows_of_a_dataframe_are_named() -> None:
    bad = frame(10)
    bad.iloc[4, bad.columns.get_loc("Close")] = np.nan
    with pytest.raises(DataError, match=r"^DataFrame 'DATA0': row 5: field 'close'"):
        tidemark.backtest(bad, SmaCross)
    naive = frame(10).tz_localize(None)
    with pytest.raises(DataError, match="times have no timezone"):
        tidemark.backtest(naive, SmaCross)
    assert tidemark.backtest(naive, SmaCross, tz="UTC").metrics["bars"] == 10


class QualifiedBase(tidemark.Strategy):  # the base as a notebook writes it: tidemark.Strategy
    threshold = np.float64(SLOW_DEFAULT)  # a class-level name using the notebook's imports

    def on_bar(self, ctx, i) -> None:  # type: ignore[no-untyped-def]
        if i == 3 and ctx.position.size == 0:
            ctx.buy(1.0)


def test_a_class_deriving_from_tidemark_strategy_replays_on_its_own() -> None:
    """The class statement's own names (its base ``tidemark.Strategy``,
    class-level values) go into the journaled source, not only its methods'."""
    result = tidemark.backtest(frame(50), QualifiedBase)
    (spec,) = result.config["strategies"]
    assert "import tidemark" in spec["source"] and "import numpy as np" in spec["source"]
    assert "SLOW_DEFAULT = 20" in spec["source"]
    assert result.metrics["open_trades"] == 1
    assert replay_verified(result.journal).ok


def test_a_class_defined_in_main_runs(tmp_path: Path) -> None:
    """A script (or notebook) run as ``__main__`` that writes ``class
    X(tidemark.Strategy)``: its captured source runs on its own."""
    import subprocess
    import sys

    script = tmp_path / "notebook.py"
    script.write_text(
        "import numpy as np\nimport pandas as pd\nimport tidemark\n\n\n"
        "class X(tidemark.Strategy):\n"
        "    def on_bar(self, ctx, i):\n"
        "        if i == 3 and ctx.position.size == 0:\n"
        "            ctx.buy(1)\n\n\n"
        "index = pd.date_range('2024-01-01', periods=30, freq='1h', tz='UTC')\n"
        "close = 100 + np.arange(30.0)\n"
        "df = pd.DataFrame({'Open': close, 'High': close + 1, 'Low': close - 1, 'Close': close}, index=index)\n"
        "print(tidemark.backtest(df, X).metrics['open_trades'])\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
