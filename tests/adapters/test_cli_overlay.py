"""``tidemark overlay-search``: seed 001's search on files of bars, blended into a run's journal."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tidemark.adapters.cli import main

BTC, ETH = "BTC-USDT-SWAP", "ETH-USDT-SWAP"


@pytest.fixture
def files(shared_data: Path) -> dict[str, Path]:
    usdm = shared_data / "ohlcv" / "binance_usdm"
    return {BTC: usdm / "BTC_USDT_USDT-1h-futures.feather", ETH: usdm / "ETH_USDT_USDT-1h-futures.feather"}


def data_flags(files: dict[str, Path]) -> list[str]:
    return [flag for symbol, path in files.items() for flag in ("--data", str(path), "--symbol", symbol)]


def test_the_search_writes_its_files_and_prints_the_selection(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "hold.journal"
    assert main(["backtest", "--data", str(files[BTC]), "--symbol", BTC, "--journal", str(base), "--no-report"]) == 0
    capsys.readouterr()
    out = tmp_path / "search"
    argv = ["overlay-search", *data_flags(files), "--base", str(base), "--bars", "4h", "--top", "2", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # one shortable symbol: the grid's two short sets are the same, kept once (864 of the seed's 1,728 at 4h)
    assert "overlay-search: 864 parameter sets (4h; BTC BTC-USDT-SWAP, short ETH-USDT-SWAP)" in printed
    total = pd.read_csv(out / "overlay-mix-total.csv")
    assert len(total) == 1 + 864 + 2 * 4
    assert total.loc[0, "name"] == "hold" and total.loc[0, "kind"] == "base_rotation"
    for name in total.loc[total["selected"] == "yes", "name"]:
        assert name in printed
    tables = ("total", "short-leg", "combo", "horizons", "monthly", "worst-rolling", "signal-definitions")
    expected = [f"overlay-mix-{n}.csv" for n in tables] + ["overlay-mix-report.md"]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    assert "Run command: `tidemark " in (out / "overlay-mix-report.md").read_text()
    assert f"files: 8 in {out}" in printed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--bars", "2h"], "--bars '2h': the seed's grid has bars 1h and 4h"),
        (["--allocations", "0.05,2"], "--allocations '0.05,2': expected fractions in (0, 1]"),
        (["--btc", "XRP"], "--btc XRP: not among the symbols"),
        (["--symbol", "X"], "3 --symbol for 2 --data"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    files: dict[str, Path],
    sample_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    base = tmp_path / "synth.journal"
    assert main(["backtest", "--data", str(sample_csv), "--journal", str(base), "--no-report"]) == 0
    capsys.readouterr()
    assert main(["overlay-search", *data_flags(files), "--base", str(base), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"tidemark: error: {message}") and "\n" not in err


def test_a_base_that_does_not_overlap_or_a_lone_symbol_is_refused(
    files: dict[str, Path], sample_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "synth.journal"
    assert main(["backtest", "--data", str(sample_csv), "--journal", str(base), "--no-report"]) == 0
    capsys.readouterr()
    lone = ["overlay-search", "--data", str(files[BTC]), "--symbol", BTC, "--base", str(base)]
    assert main(lone) == 2
    assert "give BTC and at least one symbol to short" in capsys.readouterr().err
    apart = ["overlay-search", *data_flags(files), "--base", str(base), "--bars", "4h", "--out", str(tmp_path / "o")]
    assert main(apart) == 2
    err = capsys.readouterr().err.strip()
    assert "shares fewer than two days with the closes" in err and "\n" not in err
    assert main(["overlay-search", *data_flags(files), "--base", str(tmp_path / "none.journal")]) == 2
