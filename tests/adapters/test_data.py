"""Loading and validating OHLCV: one-line errors naming file, row and field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tidemark.adapters.data import DataError, align, load_bars

GOOD = "date,open,high,low,close,volume\n" + "\n".join(
    f"2024-01-01T{h:02d}:00:00Z,{100 + h},{102 + h},{99 + h},{101 + h},{10 + h}" for h in range(6)
)


def csv(tmp_path: Path, text: str, name: str = "X.csv") -> Path:
    path = tmp_path / name
    path.write_text(text + "\n")
    return path


def bad(text: str, row: int, column: int, value: str) -> str:
    lines = text.splitlines()
    cells = lines[row].split(",")
    cells[column] = value
    lines[row] = ",".join(cells)
    return "\n".join(lines)


def test_good_file_loads_with_open_times_and_interval(tmp_path: Path) -> None:
    bars = load_bars(csv(tmp_path, GOOD))
    assert bars.symbol == "X" and len(bars) == 6
    assert bars.interval == 3_600_000_000_000
    assert bars.times[0] == pd.Timestamp("2024-01-01T00:00:00Z").value
    assert len(bars.fingerprint) == 64


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (3, 2, "90", "row 3: field 'high': high below max(open, close)"),
        (2, 3, "150", "row 2: field 'low': low above min(open, close)"),
        (4, 4, "", "row 4: field 'close': missing or not a finite number"),
        (5, 1, "-1", "row 5: field 'open': price must be > 0"),
        (2, 0, "2024-01-01T00:00:00Z", "row 2: field 'time': duplicate timestamp"),
        (4, 0, "2023-12-31T00:00:00Z", "row 4: field 'time': timestamps not sorted"),
        (6, 5, "-3", "row 6: field 'volume': volume missing, infinite or negative"),
    ],
)
def test_each_violation_names_file_row_and_field(
    tmp_path: Path, row: int, column: int, value: str, message: str
) -> None:
    path = csv(tmp_path, bad(GOOD, row, column, value))
    with pytest.raises(DataError) as info:
        load_bars(path)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_repair_drop_removes_bad_rows_and_says_so(tmp_path: Path) -> None:
    path = csv(tmp_path, bad(bad(GOOD, 3, 2, "90"), 5, 4, ""))
    bars = load_bars(path, repair="drop")
    assert len(bars) == 4
    assert bars.repairs == {"drop_close": 1, "drop_high": 1}


def test_repair_ffill_fills_missing_prices(tmp_path: Path) -> None:
    bars = load_bars(csv(tmp_path, bad(GOOD, 4, 4, "")), repair="ffill")
    assert len(bars) == 6 and bars.close[3] == bars.close[2]
    assert bars.repairs == {"ffill_close": 1}


def test_naive_times_need_a_timezone(tmp_path: Path) -> None:
    text = GOOD.replace("Z,", ",")
    with pytest.raises(DataError, match="no timezone"):
        load_bars(csv(tmp_path, text))
    bars = load_bars(csv(tmp_path, text), tz="America/New_York")
    assert bars.times[0] == pd.Timestamp("2024-01-01T05:00:00Z").value


def test_missing_column_and_unknown_type(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing column 'low'"):
        load_bars(csv(tmp_path, GOOD.replace("low", "lo")))
    with pytest.raises(DataError, match="unknown file type"):
        load_bars(csv(tmp_path, GOOD, "x.xlsx"))


def test_epoch_milliseconds_and_parquet(tmp_path: Path) -> None:
    frame = pd.read_csv(csv(tmp_path, GOOD))
    frame["timestamp"] = pd.to_datetime(frame.pop("date")).astype("int64") // 1_000_000
    frame.to_parquet(tmp_path / "Y.parquet")
    bars = load_bars(tmp_path / "Y.parquet")
    assert bars.symbol == "Y" and bars.times[1] - bars.times[0] == 3_600_000_000_000


def test_freqtrade_feather_loads(shared_data: Path) -> None:
    bars = load_bars(shared_data / "ohlcv" / "binance_spot" / "BTC_USDT-1d.feather")
    assert bars.symbol == "BTC_USDT" and bars.interval == 86_400_000_000_000 and len(bars) > 400


def test_alignment_makes_gaps_explicit(tmp_path: Path) -> None:
    a = load_bars(csv(tmp_path, GOOD, "A.csv"))
    lines = GOOD.splitlines()
    b = load_bars(csv(tmp_path, "\n".join(lines[:3] + lines[4:]), "B.csv"))
    market = align([a, b])
    assert len(market) == 6
    assert market.instruments["B"].present.tolist() == [True, True, False, True, True, True]
    assert np.isnan(market.instruments["B"].close[2])
    bars = list(market.bars())
    assert [(x.instrument, x.last) for x in bars[4:7]] == [("A", True), ("A", False), ("B", True)]  # step 2 has no B
