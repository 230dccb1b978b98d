"""Columns that grow by single values or whole arrays, and times as columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class Column:
    """A growing numpy column: values appended one at a time or as arrays
    (either stays cheap; a list of chunks would cost a concatenation of
    tens of thousands of pieces at the end)."""

    __slots__ = ("_buffer", "_size", "_tail")

    def __init__(self, dtype: type) -> None:
        self._buffer: np.ndarray = np.empty(1024, dtype=dtype)
        self._size = 0
        self._tail: list[Any] = []  # appended one at a time, not yet in the buffer

    def __len__(self) -> int:
        return self._size + len(self._tail)

    def append(self, value: Any) -> None:
        self._tail.append(value)

    def extend(self, values: np.ndarray) -> None:
        if self._tail:
            self._flush()
        self._room(len(values))[:] = values

    def fill(self, value: Any, n: int) -> None:
        """``n`` times ``value``."""
        if self._tail:
            self._flush()
        self._room(n)[:] = value

    def view(self) -> np.ndarray:
        """The values so far (a view: valid until the column changes)."""
        if self._tail:
            self._flush()
        return self._buffer[: self._size]

    def array(self) -> np.ndarray:
        """The values so far (a copy)."""
        return self.view().copy()

    def clear(self) -> None:
        self._size = 0
        self._tail.clear()

    def _room(self, n: int) -> np.ndarray:
        """The next ``n`` slots, now counted in."""
        size = self._size
        if size + n > len(self._buffer):
            grown = np.empty(max(2 * len(self._buffer), size + n), dtype=self._buffer.dtype)
            grown[:size] = self._buffer[:size]
            self._buffer = grown
        self._size = size + n
        return self._buffer[size : size + n]

    def _flush(self) -> None:
        tail = self._tail
        self._room(len(tail))[:] = tail
        tail.clear()


NO_TIME = np.iinfo(np.int64).min
"""No time (an open trip's exit): NaT once converted."""


def utc_times(ns: pd.Series) -> pd.Series:
    """Integer nanoseconds as UTC timestamps (NO_TIME: NaT)."""
    return pd.Series(pd.to_datetime(ns.to_numpy(dtype=np.int64), unit="ns", utc=True), index=ns.index)


UTC_TIME = "datetime64[ns, UTC]"
"""The dtype of every time column of a result frame."""


def typed_frame(rows: Any, dtypes: dict[str, Any]) -> pd.DataFrame:
    """A result frame from ``rows`` (a list of dicts or tuples); with no rows,
    an empty frame that still has every column of ``dtypes`` with its dtype
    (``"str"``: pandas' string dtype), so code written for a run with trades
    works on a run without any. A frame with rows is built as it always was."""
    if len(rows):
        if isinstance(rows[0], dict):
            return pd.DataFrame(rows)
        return pd.DataFrame(rows, columns=list(dtypes))
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})


def event_dtypes(cls: Any, before: tuple[str, ...] = ("seq",), after: dict[str, Any] | None = None) -> dict[str, Any]:
    """The column dtypes of a frame with one row per event of ``cls`` (a
    msgspec Struct): ``before`` (int64 columns), its fields, then ``after``."""
    import msgspec

    kinds = {int: "int64", float: "float64", str: "str", bool: "bool"}
    fields = {field.name: kinds.get(field.type, "object") for field in msgspec.structs.fields(cls)}
    return {**dict.fromkeys(before, "int64"), **fields, **(after or {})}
