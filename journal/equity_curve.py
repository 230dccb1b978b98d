"""The equity curve of a journal: the account at the close of each time step."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.portfolio import Portfolio
from journal.columns import Column


class EquityCurve:
    """The account at the close of each time step, as the run's accounting
    (:class:`core.portfolio.Portfolio`) values it.

    Steps are valued lazily: while only one instrument's mark moves (the
    usual stretch between two fills), closed steps are kept as (time, mark)
    and valued together when anything else is about to change, by running
    the accounting once with that mark as an array. Its arithmetic is
    elementwise, so each value is the float a step-by-step valuation gives.
    Invariant: since the first kept step, the portfolio changed only in the
    mark of ``_moving``, whose values at the kept steps are ``_marks``
    followed by the rows ``_rows`` of the columns ``_columns`` (a stretch of
    a block's bars, kept as a view until it is valued).
    """

    NAMES = ("equity", "cash", "exposure", "in_market")

    def __init__(self, portfolio: Portfolio) -> None:
        self.portfolio = portfolio
        self.times = Column(np.int64)
        self.columns = {name: Column(np.float64) for name in self.NAMES}
        self._moving: str | None = None
        self._times = Column(np.int64)
        self._marks = Column(np.float64)
        self._columns: tuple[np.ndarray, np.ndarray] | None = None  # (times, marks) of a block's bars
        self._rows = (0, 0)

    def moving(self, instrument: str) -> bool:
        """``instrument``'s mark is about to move; True if steps closed
        meanwhile are kept for valuing later (its mark is known and sets no
        exchange rate), False if they will be valued one by one."""
        if self._moving == instrument:
            return True
        self.changing()
        portfolio = self.portfolio
        if instrument in portfolio.marks and instrument not in portfolio.rate_sources:
            self._moving = instrument
            return True
        return False

    def changing(self) -> None:
        """The portfolio is about to change other than by a moving mark."""
        if self._times or self._columns is not None:
            self._value_kept()
        self._moving = None

    def close(self, ts: int) -> None:
        """The step at ``ts`` closes with the portfolio as it is."""
        if self._moving is not None:
            self._keep_rows()
            self._times.append(ts)
            self._marks.append(self.portfolio.marks[self._moving])
            return
        portfolio = self.portfolio
        self.times.append(ts)
        equity, cash, gross = portfolio.equity(), portfolio.cash(), portfolio.gross_exposure()
        columns = self.columns
        columns["equity"].append(equity)
        columns["cash"].append(cash)
        columns["exposure"].append(gross)
        columns["in_market"].append(self._in_market())

    def close_rows(self, times: np.ndarray, marks: np.ndarray, start: int, stop: int) -> None:
        """Steps at ``times[start:stop]`` (int64 ns) close with the moving
        instrument's mark at ``marks[start:stop]`` (after :meth:`moving`
        returned True); rows that continue the kept ones are not copied."""
        if stop <= start:
            return
        kept = self._columns
        if kept is not None and kept[0] is times and self._rows[1] == start:
            self._rows = (self._rows[0], stop)
            return
        self._keep_rows()
        self._columns = (times, marks)
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
        """Copy the kept rows after the kept marks."""
        if self._columns is not None:
            (times, marks), (start, stop) = self._columns, self._rows
            self._times.extend(times[start:stop])
            self._marks.extend(marks[start:stop])
            self._columns = None

    def _value_kept(self) -> None:
        portfolio = self.portfolio
        instrument = self._moving
        assert instrument is not None
        if self._columns is not None and not self._times:
            (times, marks), (start, stop) = self._columns, self._rows
            times, marks = times[start:stop], marks[start:stop]
        else:
            self._keep_rows()
            times, marks = self._times.view(), self._marks.view()
        current = portfolio.marks[instrument]
        portfolio.marks[instrument] = marks  # type: ignore[assignment]
        try:
            equity, gross = portfolio.equity(), portfolio.gross_exposure()
        finally:
            portfolio.marks[instrument] = current
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
        self._marks.clear()
        self._columns = None

    def _in_market(self) -> float:
        return 1.0 if any(position.quantity != 0.0 for position in self.portfolio.positions.values()) else 0.0
