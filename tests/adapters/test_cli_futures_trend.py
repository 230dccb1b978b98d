"""futures_trend with seed 003's options from the command line: the example
run config in docs/examples, and the options as --param flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tidemark.adapters.backtest import Result

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tidemark" / "adapters" / "sample_data"
EXAMPLE = ROOT / "docs" / "examples" / "futures_trend_seed003.json"


def tidemark(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tidemark", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_seed_003_example_config_runs(tmp_path: Path) -> None:
    done = tidemark(
        "backtest",
        "--config",
        str(EXAMPLE),
        "--data",
        str(SAMPLES / "SYNTH_BTC-1h.csv"),
        "--symbol",
        "BTC",
        "--data",
        str(SAMPLES / "SYNTH_ETH-1h.csv"),
        "--symbol",
        "ETH",
        "--journal",
        str(tmp_path / "seed003.journal"),
        "--no-report",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert metrics["rejections"] == 0 and metrics["trades"] > 10
    result = Result.from_journal(tmp_path / "seed003.journal")
    fills = result.fills
    assert set(fills["instrument"]) == {"BTC", "ETH"}
    assert (fills["quantity"] == fills["quantity"].round()).all()  # whole contracts
    assert fills["fee"].sum() == 2.5 * fills["quantity"].sum()  # per-contract commission only
    # the seed's fills: at the close of the bar decided on
    bars = pd.read_csv(SAMPLES / "SYNTH_BTC-1h.csv", parse_dates=["date"]).set_index("date")["close"]
    btc = fills[fills["instrument"] == "BTC"]
    assert list(btc["price"]) == list(bars.reindex(btc["exec_time"] - pd.Timedelta(hours=1)))
    table = result.recorded()
    assert {"equity_base", "closed_equity", "open_risk", "heat"} <= set(table.columns)
    assert table["heat"].max() <= 0.10 + 1e-12  # the heat cap holds


def test_seed_options_as_params_on_the_bundled_sample(tmp_path: Path) -> None:
    params = [
        "slow=100",
        "signal=sign",
        "resize=daily",
        "fill=close",
        "closed_equity=marked_on_change",
        "open_risk=entry",
        "heat_cap=0.10",
        "long_only=true",  # the sample is spot in a cash account: no shorts
    ]
    done = tidemark(
        "backtest",
        "--strategy",
        "futures_trend",
        "--cash",
        "400000",
        *(arg for p in params for arg in ("--param", p)),
        "--journal",
        str(tmp_path / "params.journal"),
        "--no-report",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert metrics["rejections"] == 0 and metrics["trades"] > 10
    config = Result.from_journal(tmp_path / "params.journal").config
    assert config["strategies"][0]["params"]["resize"] == "daily"


def test_universe_min_keeps_the_files_whose_last_value_passes(tmp_path: Path) -> None:
    """--universe-min (seed 003's min_usd_risk_volume): the files whose last
    value of the column is below the floor are not traded, and the header
    records the rule, each value and what was dropped."""
    paths = []
    for name, last in (("BTC", 9e6), ("ETH", 2e6)):
        frame = pd.read_csv(SAMPLES / f"SYNTH_{name}-1h.csv")
        frame["usd_risk_volume"] = 1e7
        frame.loc[frame.index[-1], "usd_risk_volume"] = last  # only the last value counts
        paths.append(tmp_path / f"{name}.csv")
        frame.to_csv(paths[-1], index=False)
    common = ["backtest", "--config", str(EXAMPLE), "--data", str(paths[0]), "--symbol", "BTC"]
    common += ["--data", str(paths[1]), "--symbol", "ETH", "--no-report"]
    done = tidemark(*common, "--universe-min", "usd_risk_volume=5e6", "--journal", "u.journal", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = Result.from_journal(tmp_path / "u.journal")
    assert result.config["symbols"] == ["BTC"] and set(result.fills["instrument"]) == {"BTC"}
    chosen = json.loads(result.header.fingerprints)["universe:usd_risk_volume"]
    assert chosen == {"rule": "last usd_risk_volume >= 5e+06", "values": {"BTC": 9e6, "ETH": 2e6}, "dropped": ["ETH"]}
    assert any(w.startswith("universe chosen by last usd_risk_volume >= 5e+06") for w in result.warnings)
    assert "not traded: ETH" in " ".join(result.warnings)

    none = tidemark(*common, "--universe-min", "usd_risk_volume=1e9", "--journal", "n.journal", cwd=tmp_path)
    assert none.returncode == 2 and len(none.stderr.strip().splitlines()) == 1
    assert "universe: no instrument has last usd_risk_volume >= 1e+09 (BTC=9000000.0, ETH=2000000.0)" in none.stderr
    assert not (tmp_path / "n.journal").exists()
    bad = tidemark(*common, "--universe-min", "usd_risk_volume", "--journal", "b.journal", cwd=tmp_path)
    assert bad.returncode == 2 and "expected COLUMN=NUMBER" in bad.stderr
