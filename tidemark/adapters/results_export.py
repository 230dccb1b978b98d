"""A run's derived results as files: trades, equity, orders, fills,
positions, rejections, funding and interest tables, and the metrics.

Times are UTC: ISO-8601 text in CSV and JSON Lines (``2024-01-03T03:00:00Z``),
timestamp columns in Parquet. Money is in the account currency, named in
``metrics.json`` (``currency``) and on each fee and funding row.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tidemark.core.clock import iso_utc

TABLES = (
    "trades",
    "equity",
    "orders",
    "fills",
    "positions",
    "rejections",
    "funding",
    "interest",
    "records",
    "counters",
)
NS_COLUMNS = ("ts", "since", "funding_ts", "exec_ts")
"""Integer-ns time columns some tables carry."""


def export_results(result: Any, out_dir: str | Path, fmt: str) -> list[Path]:
    """Write ``result``'s tables and metrics under ``out_dir``; returns the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TABLES:
        frame = getattr(result, name)
        if name == "equity":
            frame = frame.reset_index()
        frame = _times(frame, text=fmt != "parquet")
        target = out / f"{name}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(target, index=False)
        elif fmt == "csv":
            frame.to_csv(target, index=False)
        else:
            frame.to_json(target, orient="records", lines=True, date_format="iso")
        written.append(target)
    target = out / "metrics.json"
    metrics = {**_finite(result.metrics), "run_id": result.run_id, "warnings": list(result.warnings)}
    target.write_text(json.dumps(metrics, sort_keys=True, indent=1) + "\n")
    written.append(target)
    return written


def _times(frame: pd.DataFrame, *, text: bool) -> pd.DataFrame:
    frame = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if str(column) in NS_COLUMNS and pd.api.types.is_integer_dtype(values):
            values = pd.to_datetime(values, unit="ns", utc=True)
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            if text:
                values = _iso(values)
            frame[column] = values
        elif pd.api.types.is_timedelta64_dtype(values) and text:
            frame[column] = values.map(lambda d: "" if pd.isna(d) else d.isoformat())
    return frame


def _iso(values: pd.Series) -> pd.Series:
    """ISO-8601 UTC text of a timestamp column (vectorised when every time
    is a whole second, as bar times are); NaT as empty text."""
    ns = values.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    missing = values.isna().to_numpy()
    if not (ns[~missing] % 1_000_000_000).any():
        text = values.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        text = pd.Series([iso_utc(t) for t in ns], index=values.index)
    return text.where(~missing, "")


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
