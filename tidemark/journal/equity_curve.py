"""The equity curve of a journal: the account at the close of each time step."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tidemark.core.accounts.portfolio import Portfolio
from tidemark.journal.columns import Column


class EquityCurve:
    """The account at the close of each time step, as the run's accounting
    (:class:`tidemark.core.accounts.portfolio.Portfolio`) values it.

    Steps are valued lazily: while only marks move (the stretches between
    fills, funding and new instruments), closed steps are kept as their time
    and the mark of each instrument that moved, and valued together when
    anything else is about to change, by running the accounting once with
    those marks as arrays. Its arithmetic is elementwise, so each value is
    the float a step-by-step valuation gives.

    Invariant: since the first kept step, the portfolio changed only in the
    marks of the instruments in ``_moving``. Kept step ``k`` closed at
    ``_times[k]`` with mark ``_moving[name][k]`` for each of them; then come
    the rows ``_rows`` of a block's bars of one instrument (``_view``, kept
    as a view until it is valued), over which every other moving mark was
    and still is its current one.
    """

    NAMES = ("equity", "cash", "exposure", "in_market")

    def __init__(self, portfolio: Portfolio) -> None:
        self.portfolio = portfolio
        self.times = Column(np.int64)
        self.columns = {name: Column(np.float64) for name in self.NAMES}
        self._moving: dict[str, Column] = {}
        self._times = Column(np.int64)
        self._view: tuple[str, np.ndarray, np.ndarray] | None = None  # (instrument, times, marks)
        self._rows = (0, 0)

    def moving(self, instrument: str) -> bool:
        """``instrument``'s mark is about to move; True if steps closed
        meanwhile are kept for valuing later (its mark is known and sets no
        exchange rate), False if they will be valued one by one."""
        moving = self._moving
        view = self._view
        if view is not None and view[0] != instrument:
            self._keep_rows()  # the rows' other marks are current only until this one moves
        if instrument in moving:
            return True
        portfolio = self.portfolio
        if instrument in portfolio.marks and instrument not in portfolio.rate_sources:
            marks = moving[instrument] = Column(np.float64)
            marks.fill(portfolio.marks[instrument], len(self._times))  # constant until now
            return True
        self.changing()
        return False

    def changing(self) -> None:
        """The portfolio is about to change other than by a moving mark."""
        if self._times or self._view is not None:
            self._value_kept()
        self._moving = {}

    def close(self, ts: int) -> None:
        """The step at ``ts`` closes with the portfolio as it is."""
        portfolio = self.portfolio
        if self._moving:
            self._keep_rows()
            self._times.append(ts)
            marks = portfolio.marks
            for instrument, column in self._moving.items():
                column.append(marks[instrument])
            return
        self.times.append(ts)
        equity, cash, gross = portfolio.equity(), portfolio.cash(), portfolio.gross_exposure()
        columns = self.columns
        columns["equity"].append(equity)
        columns["cash"].append(cash)
        columns["exposure"].append(gross)
        columns["in_market"].append(self._in_market())

    def close_rows(self, instrument: str, times: np.ndarray, marks: np.ndarray, start: int, stop: int) -> None:
        """Steps at ``times[start:stop]`` (int64 ns) close with
        ``instrument``'s mark at ``marks[start:stop]`` and the other marks as
        they are (after :meth:`moving` returned True for it); rows that
        continue the kept ones are not copied."""
        if stop <= start:
            return
        view = self._view
        if view is not None and view[1] is times and view[0] == instrument and self._rows[1] == start:
            self._rows = (self._rows[0], stop)
            return
        self._keep_rows()
        self._view = (instrument, times, marks)
        self._rows = (start, stop)

    def frame(self) -> pd.DataFrame:
        self.changing()
        equity = pd.DataFrame(
            {name: column.array() for name, column in self.columns.items()},
            index=pd.to_datetime(self.times.array(), unit="ns", utc=True),
        )
        equity.index.name = "time"
        return equity

    def _keep_rows(self) -> None:
        """Copy the rows of the view after the kept steps."""
        if self._view is None:
            return
        (instrument, times, marks), (start, stop) = self._view, self._rows
        self._times.extend(times[start:stop])
        current = self.portfolio.marks
        for name, column in self._moving.items():
            if name == instrument:
                column.extend(marks[start:stop])
            else:
                column.fill(current[name], stop - start)
        self._view = None

    def _value_kept(self) -> None:
        portfolio = self.portfolio
        marks = portfolio.marks
        arrays: dict[str, np.ndarray]
        if self._view is not None and not self._times:  # the rows alone: valued without a copy
            (instrument, times, view_marks), (start, stop) = self._view, self._rows
            times = times[start:stop]
            arrays = {instrument: view_marks[start:stop]}
        else:
            self._keep_rows()
            times = self._times.view()
            arrays = {name: column.view() for name, column in self._moving.items()}
        current = {name: marks[name] for name in arrays}
        marks.update(arrays)  # type: ignore[arg-type]
        try:
            equity, gross = portfolio.equity(), portfolio.gross_exposure()
        finally:
            marks.update(current)
        n = len(times)
        self.times.extend(times)
        columns = self.columns
        for name, value in (
            ("equity", equity),
            ("cash", portfolio.cash()),
            ("exposure", gross),
            ("in_market", self._in_market()),
        ):
            if type(value) is np.ndarray:
                columns[name].extend(value)
            else:
                columns[name].fill(value, n)
        self._times.clear()
        self._view = None

    def _in_market(self) -> float:
        return 1.0 if any(position.quantity != 0.0 for position in self.portfolio.positions.values()) else 0.0
