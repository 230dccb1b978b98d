"""Historical OHLCV: load CSV / Parquet / Feather, validate, align, fingerprint.

Accepted layouts: a time column named one of ``date, datetime, time,
timestamp, open_time`` (or an unnamed first column, or the index of a
Parquet/Feather frame) and columns
``open, high, low, close`` and optionally ``volume`` (case-insensitive; the
freqtrade feather layout and backtesting.py's CSVs both load as they are).
Numeric times are Unix epochs (s, ms, us or ns, by magnitude). Text times
must carry a timezone unless ``tz`` says which one they are in. Times are bar
*open* times; a bar's event time is its close (open + interval).

Validation (a violation raises :class:`DataError` naming file, row and field;
rows are 1-based data rows): times sorted and unique; open, high, low, close
finite and > 0 (no NaN, no infinity); ``high >= max(open, close)``; ``low <=
min(open, close)``; volume finite and >= 0. The bar interval is inferred from
the times (their median spacing) and checked: a file whose bars are not
``timeframe`` apart, or whose bars start inside the previous bar, is an
error. ``repair="drop"`` drops offending rows and ``repair="ffill"``
forward-fills missing prices instead; what a repair did is recorded in the
run header.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import structlog

from tidemark.adapters.parsed_cache import ParsedCache, default_root
from tidemark.core.config import format_duration
from tidemark.core.events import FundingRate, MarkPrice
from tidemark.core.series import InstrumentSeries, MarketSeries, sorted_distinct

TIME_COLUMNS = ("date", "datetime", "time", "timestamp", "open_time")
PRICE_COLUMNS = ("open", "high", "low", "close")
SUFFIXES = {
    ".csv": "csv",
    ".txt": "csv",
    ".gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".feather": "feather",
    ".arrow": "feather",
}


log = structlog.get_logger("tidemark.data")


class DataError(ValueError):
    """Bad input data; the message is one line naming file, row and field."""


@dataclass
class LoadedBars:
    """One instrument's validated bars. ``times`` are open times in ns."""

    symbol: str
    path: str
    times: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    interval: int
    fingerprint: str
    repairs: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.times)


def fingerprint(path: str | Path) -> str:
    """sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def symbol_from_path(path: Path) -> str:
    """``BTC_USDT-5m.feather`` -> ``BTC_USDT``; ``GOOG.csv`` -> ``GOOG``."""
    stem = path.name
    for suffix in (".gz", ".csv", ".parquet", ".pq", ".feather", ".arrow", ".txt"):
        stem = stem.removesuffix(suffix)
    return stem.split("-")[0] or stem


def read_frame(path: Path) -> pd.DataFrame:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unknown file type {path.suffix!r} (use .csv, .parquet or .feather)")
    try:
        if kind == "csv":
            return pd.read_csv(path)
        frame = pd.read_parquet(path) if kind == "parquet" else pd.read_feather(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except Exception as exc:
        raise DataError(f"{path}: cannot read {kind}: {type(exc).__name__}: {exc}") from None
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    return frame


def load_bars(
    path: str | Path,
    *,
    symbol: str | None = None,
    tz: str | None = None,
    repair: str = "none",
    interval: int | None = None,
    start: int | None = None,
    end: int | None = None,
    keep_before: int = 0,
) -> LoadedBars:
    """Load and validate one file. ``interval``: the bar length (ns) the
    file must have (None: inferred); ``start``/``end``: open-time bounds (ns,
    inclusive); ``keep_before``: bars before ``start`` kept too (warm-up)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    label = str(path)
    print_ = fingerprint(path)
    cache = ParsedCache(root) if SUFFIXES.get(path.suffix.lower()) == "csv" and (root := default_root()) else None
    parsed = cache.get(print_, tz) if cache is not None else None
    if parsed is None:
        parsed = parse_frame(read_frame(path), label, tz)
        if cache is not None:
            cache.put(print_, tz, parsed)
    return finish_bars(
        *parsed,
        label,
        symbol or symbol_from_path(path),
        fingerprint=print_,
        repair=repair,
        interval=interval,
        start=start,
        end=end,
        keep_before=keep_before,
    )


def load_frame(
    frame: pd.DataFrame,
    symbol: str,
    *,
    tz: str | None = None,
    repair: str = "none",
    interval: int | None = None,
    start: int | None = None,
    end: int | None = None,
    keep_before: int = 0,
) -> LoadedBars:
    """Validate a pandas DataFrame of bars (OHLC[V] columns in any case; the
    times in a column or the index, tz-aware or with ``tz``), as a file.
    Errors name it ``DataFrame 'SYMBOL'``; its fingerprint is the sha256 of
    the validated bars (times and OHLCV as little-endian int64/float64)."""
    table = frame if isinstance(frame.index, pd.RangeIndex) else frame.reset_index()
    loaded = finish_bars(
        *parse_frame(table, f"DataFrame {symbol!r}", tz),
        f"DataFrame {symbol!r}",
        symbol,
        fingerprint="",
        repair=repair,
        interval=interval,
        start=start,
        end=end,
        keep_before=keep_before,
    )
    digest = hashlib.sha256()
    for array in (loaded.times, loaded.open, loaded.high, loaded.low, loaded.close, loaded.volume):
        digest.update(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
    loaded.fingerprint = digest.hexdigest()
    return loaded


def parse_frame(frame: pd.DataFrame, label: str, tz: str | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A frame's times (open, int64 ns UTC) and OHLCV columns as float64 (NaN
    where a value is missing or not a number), one row per data row."""
    path = label
    columns = {str(c).strip().lower(): c for c in frame.columns}
    time_key = next((c for c in TIME_COLUMNS if c in columns), None)
    first = str(frame.columns[0]) if len(frame.columns) else ""
    if time_key is None and (first.startswith("Unnamed: 0") or first == "index"):
        time_key = first.lower()  # an unnamed index column, as backtesting.py's CSVs have
        columns[time_key] = frame.columns[0]
    if time_key is None:
        raise DataError(f"{path}: no time column (expected one of {', '.join(TIME_COLUMNS)})")
    for name in PRICE_COLUMNS:
        if name not in columns:
            raise DataError(f"{path}: missing column {name!r}")
    times = _parse_times(path, frame[columns[time_key]], time_key, tz)
    data = {name: pd.to_numeric(frame[columns[name]], errors="coerce").to_numpy(dtype=float) for name in PRICE_COLUMNS}
    if "volume" in columns:
        data["volume"] = pd.to_numeric(frame[columns["volume"]], errors="coerce").to_numpy(dtype=float)
    else:
        data["volume"] = np.zeros(len(frame))
    return times, data


def finish_bars(
    times: np.ndarray,
    data: dict[str, np.ndarray],
    label: str,
    symbol: str,
    *,
    fingerprint: str,
    repair: str = "none",
    interval: int | None = None,
    start: int | None = None,
    end: int | None = None,
    keep_before: int = 0,
) -> LoadedBars:
    """Validate, repair and window parsed columns (see the module docstring)."""
    path = label
    repairs: dict[str, int] = {}
    layout = sorted_distinct(times)  # the file's own bar spacing, whatever rows a repair drops
    times, data = _check(path, times, data, repair, repairs)
    step = _infer_interval(path, layout, interval)
    if start is not None or end is not None:
        keep = np.ones(len(times), dtype=bool)
        if start is not None:
            cut = max(0, int(np.searchsorted(times, start)) - keep_before)
            keep[:cut] = False
        if end is not None:
            keep &= times <= end
        times = times[keep]
        data = {k: v[keep] for k, v in data.items()}
    if len(times) == 0:
        raise DataError(f"{path}: no bars (after the start/end window)")
    o, h, lo, c, v = (np.ascontiguousarray(data[k]) for k in ("open", "high", "low", "close", "volume"))
    return LoadedBars(
        symbol,
        label,
        np.ascontiguousarray(times),
        o,
        h,
        lo,
        c,
        v,
        interval=step,
        fingerprint=fingerprint,
        repairs=repairs,
    )


def _parse_times(path: Path | str, column: pd.Series, name: str, tz: str | None) -> np.ndarray:
    if len(column) == 0:
        raise DataError(f"{path}: no rows")
    if column.isna().any():
        row = int(np.flatnonzero(column.isna().to_numpy())[0]) + 1
        raise DataError(f"{path}: row {row}: field {name!r}: missing time")
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=np.int64)
        magnitude = int(np.abs(values).max())
        scale = (
            1_000_000_000
            if magnitude < 10**11
            else 1_000_000
            if magnitude < 10**14
            else 1_000
            if magnitude < 10**17
            else 1
        )
        return values * scale
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        parsed = column
    else:
        try:
            parsed = pd.to_datetime(column, utc=False, format="ISO8601")
        except (ValueError, TypeError):
            try:
                parsed = pd.to_datetime(column, utc=False)
            except (ValueError, TypeError) as exc:
                raise DataError(f"{path}: field {name!r}: unreadable time ({exc})") from None
    if not isinstance(parsed.dtype, pd.DatetimeTZDtype):
        if parsed.dtype == object:
            raise DataError(f"{path}: field {name!r}: mixed timezones")
        if tz is None:
            raise DataError(
                f"{path}: field {name!r}: times have no timezone; add one (e.g. 2024-01-01T00:00:00Z) or pass --tz UTC"
            )
        parsed = parsed.dt.tz_localize(tz)
    return parsed.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _check(
    path: Path | str, times: np.ndarray, data: dict[str, np.ndarray], repair: str, repairs: dict[str, int]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if repair == "drop":
        order = np.argsort(times, kind="stable")
        if (order != np.arange(len(order))).any():
            repairs["sorted"] = int((order != np.arange(len(order))).sum())
        times = times[order]
        data = {k: v[order] for k, v in data.items()}
    elif repair == "ffill":
        for name in PRICE_COLUMNS:
            series = pd.Series(data[name])
            missing = int(series.isna().sum())
            if missing:
                repairs[f"ffill_{name}"] = missing
                filled = series.ffill()
                if name != "close":
                    filled = filled.fillna(pd.Series(data["close"]).ffill().shift(1))
                data[name] = filled.to_numpy()
    bad = np.zeros(len(times), dtype=bool)
    checks: list[tuple[np.ndarray, str, str]] = []
    for name in PRICE_COLUMNS:
        checks.append((~np.isfinite(data[name]), name, "missing or not a finite number"))
        checks.append((~(data[name] > 0) & np.isfinite(data[name]), name, "price must be > 0"))
    o, h, lo, c, v = (data[k] for k in ("open", "high", "low", "close", "volume"))
    with np.errstate(invalid="ignore"):
        checks.append((h < np.maximum(o, c), "high", "high below max(open, close)"))
        checks.append((lo > np.minimum(o, c), "low", "low above min(open, close)"))
        checks.append((~np.isfinite(v) | (v < 0), "volume", "volume missing, infinite or negative"))
    step = np.diff(times)
    dup = np.concatenate(([False], step == 0))
    back = np.concatenate(([False], step < 0))
    checks.append((dup, "time", "duplicate timestamp"))
    checks.append((back, "time", "timestamps not sorted"))
    if repair == "none" or repair == "ffill":
        first = None
        for mask, name, problem in checks:
            hits = np.flatnonzero(mask)
            if len(hits) and (first is None or hits[0] < first[0]):
                first = (int(hits[0]), name, problem)
        if first is not None:
            row, name, problem = first
            hint = "" if repair != "none" else " (or pass --repair drop)"
            raise DataError(f"{path}: row {row + 1}: field {name!r}: {problem}{hint}")
        return times, data
    for mask, name, _ in checks:
        count = int((mask & ~bad).sum())
        if count:
            repairs[f"drop_{name}"] = repairs.get(f"drop_{name}", 0) + count
        bad |= mask
    keep = ~bad
    return times[keep], {k: val[keep] for k, val in data.items()}


def _infer_interval(path: Path | str, times: np.ndarray, expected: int | None) -> int:
    """The file's bar length (ns): the median spacing of its open times,
    checked against ``expected`` (the run's timeframe) when given. Bars that
    start well inside the previous bar's interval (< 80% of it) overlap."""
    if len(times) < 2:
        if expected is None:
            raise DataError(f"{path}: one bar only; give the timeframe (--timeframe) to know its length")
        return expected
    spacing = np.diff(times)
    step = int(np.median(spacing))
    if expected is not None and step != expected:
        raise DataError(
            f"{path}: bars are {format_duration(step)} apart, not the timeframe {format_duration(expected)} "
            f"(use --timeframe {format_duration(step)}, and ctx.data[symbol].resample(...) for coarser bars)"
        )
    short = np.flatnonzero(spacing < 0.8 * step)
    if len(short):
        k = int(short[0])
        raise DataError(
            f"{path}: row {k + 2}: field 'time': bar starts {format_duration(int(spacing[k]))} after the one "
            f"before, inside its {format_duration(step)} interval (bars overlap)"
        )
    return step


def align(loaded: list[LoadedBars]) -> MarketSeries:
    """Put instruments on one timeline of bar close times (NaN where absent).
    Every file must have the same bar length: a coarser file beside a finer
    one would show its bars before they closed."""
    symbols = [b.symbol for b in loaded]
    if len(set(symbols)) != len(symbols):
        raise DataError(f"two data files give the same symbol: {sorted(symbols)}; name them with --symbol")
    first = loaded[0]
    for other in loaded[1:]:
        if other.interval != first.interval:
            fine, coarse = sorted((first, other), key=lambda b: b.interval)
            raise DataError(
                f"{first.path} has {format_duration(first.interval)} bars but {other.path} has "
                f"{format_duration(other.interval)} bars: a run's data must share one bar length; give the "
                f"{format_duration(fine.interval)} data of {coarse.symbol} and use "
                f"ctx.data[{coarse.symbol!r}].resample({format_duration(coarse.interval)!r}) in the strategy"
            )
    closes = [b.times + b.interval for b in loaded]
    timeline = sorted_distinct(np.concatenate(closes)) if len(loaded) > 1 else closes[0]
    instruments = {}
    for bars, close_times in zip(loaded, closes, strict=True):
        if len(loaded) == 1:
            arrays = [bars.open, bars.high, bars.low, bars.close, bars.volume]
            present = np.ones(len(timeline), dtype=bool)
        else:
            index = np.searchsorted(timeline, close_times)
            arrays = []
            for values in (bars.open, bars.high, bars.low, bars.close, bars.volume):
                out = np.full(len(timeline), np.nan)
                out[index] = values
                arrays.append(out)
            present = np.zeros(len(timeline), dtype=bool)
            present[index] = True
        o, h, lo, c, v = arrays
        instruments[bars.symbol] = InstrumentSeries(bars.symbol, bars.interval, o, h, lo, c, v, present)
    return MarketSeries(timeline, instruments)


def describe(loaded: list[LoadedBars]) -> dict[str, Any]:
    """Fingerprints and repairs for the run header."""
    return {
        b.symbol: {
            "file": Path(b.path).name,
            "sha256": b.fingerprint,
            "rows": len(b),
            "interval_ns": b.interval,
            "repairs": b.repairs,
        }
        for b in loaded
    }


def load_funding(path: str | Path, symbol: str | None = None) -> list[FundingRate]:
    """Funding-rate history (freqtrade layout: rate in ``open``, time = funding time)."""
    path = Path(path)
    frame = read_frame(path)
    columns = {str(c).strip().lower(): c for c in frame.columns}
    time_key = next((c for c in TIME_COLUMNS if c in columns), None)
    rate_key = "rate" if "rate" in columns else "fundingrate" if "fundingrate" in columns else "open"
    if time_key is None or rate_key not in columns:
        raise DataError(f"{path}: expected a time column and a rate column ('rate' or freqtrade's 'open')")
    times = _parse_times(path, frame[columns[time_key]], time_key, None)
    rates = pd.to_numeric(frame[columns[rate_key]], errors="coerce").to_numpy(dtype=float)
    _check_series(path, times, rates, rate_key, positive=False)
    name = symbol or symbol_from_path(path)
    return [FundingRate(int(t), name, float(r)) for t, r in zip(times.tolist(), rates.tolist(), strict=True)]


def load_marks(path: str | Path, symbol: str | None = None) -> list[MarkPrice]:
    """Mark-price candles; one MarkPrice per candle at its close time (close price)."""
    bars = load_bars(path, symbol=symbol)
    return [
        MarkPrice(int(t) + bars.interval, bars.symbol, float(c))
        for t, c in zip(bars.times.tolist(), bars.close.tolist(), strict=True)
    ]


def _check_series(path: Path | str, times: np.ndarray, values: np.ndarray, name: str, *, positive: bool) -> None:
    bad = np.isnan(values) | ((values <= 0) if positive else False)
    if bad.any():
        raise DataError(f"{path}: row {int(np.flatnonzero(bad)[0]) + 1}: field {name!r}: missing or not a number")
    step = np.diff(times)
    if (step <= 0).any():
        raise DataError(
            f"{path}: row {int(np.flatnonzero(step <= 0)[0]) + 2}: field 'time': timestamps not sorted and unique"
        )
