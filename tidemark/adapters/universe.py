"""Universe selection before a run: keep the instruments whose data passes a rule.

Seed 003 trades only the instruments whose ``usd_risk_volume`` column ends at
or above a floor (``min_usd_risk_volume``): the *last* value in each file, so
the choice knows how the file ends. That is a selection made before the run,
like choosing the symbols, and it carries the file's end into the run
(survivorship): the rule and every instrument's value are written in the run
header, so a reader of the journal sees how the universe was chosen.

A rule reads a column of the data as given (any CSV/Parquet/Feather column,
or a DataFrame's), case-insensitively; an instrument whose data lacks the
column, or has no value in it, is dropped, as the seed drops it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tidemark.adapters.data import DataError, read_frame, symbol_from_path

DataSource = str | os.PathLike[str] | pd.DataFrame


@dataclass(frozen=True)
class UniverseRule:
    """Keep an instrument when the last value of ``column`` in its data is
    at least ``minimum`` (in the column's own unit)."""

    column: str
    minimum: float

    @classmethod
    def parse(cls, text: str) -> UniverseRule:
        """``COLUMN=MINIMUM`` (``usd_risk_volume=5e6``)."""
        column, sep, value = text.partition("=")
        try:
            minimum = float(value)
        except ValueError:
            minimum = math.nan
        if not sep or not column.strip() or not math.isfinite(minimum):
            raise DataError(f"--universe-min {text!r}: expected COLUMN=NUMBER, e.g. usd_risk_volume=5e6")
        return cls(column.strip(), minimum)

    def describe(self) -> str:
        return f"last {self.column} >= {self.minimum:g}"


def last_value(source: DataSource, column: str) -> float | None:
    """The last non-missing value of ``column`` in a data source, or None."""
    frame = source if isinstance(source, pd.DataFrame) else read_frame(Path(source))
    names = {str(c).strip().lower(): c for c in frame.columns}
    key = names.get(column.lower())
    if key is None:
        return None
    values = pd.to_numeric(frame[key], errors="coerce").dropna()
    return float(values.iloc[-1]) if len(values) else None


def select(
    sources: Sequence[DataSource], symbols: Sequence[str], rule: UniverseRule
) -> tuple[list[DataSource], list[str], dict[str, Any]]:
    """The sources (and their symbols, when given) the rule keeps, and what
    the header records: the rule, each instrument's value and what was
    dropped. Keeping nothing is a :class:`DataError`."""
    kept: list[DataSource] = []
    kept_symbols: list[str] = []
    values: dict[str, float | None] = {}
    dropped: list[str] = []
    for k, source in enumerate(sources):
        name = (
            symbols[k]
            if k < len(symbols)
            else str(source.attrs.get("symbol", "") or f"DATA{k}")
            if isinstance(source, pd.DataFrame)
            else symbol_from_path(Path(source))
        )
        value = last_value(source, rule.column)
        values[name] = value
        if value is not None and value >= rule.minimum:
            kept.append(source)
            if k < len(symbols):
                kept_symbols.append(symbols[k])
        else:
            dropped.append(name)
    if not kept:
        shown = ", ".join(f"{name}={value}" for name, value in values.items())
        raise DataError(f"universe: no instrument has {rule.describe()} ({shown})")
    return kept, kept_symbols, {"rule": rule.describe(), "values": values, "dropped": dropped}
