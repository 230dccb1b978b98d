"""Interest on what a margin account borrows.

A margin account with borrowing (``borrow_rate``, an annual fraction over a
365-day year) lends the asset a spot short sold, and the cash a levered spot
long spent beyond the account's cash in that currency. Each loan's size
changes only when the account does (fills, funding, interest), so interest
accrues exactly as ``size * rate * elapsed``: it is charged when a loan's
size changes, at the first step of each UTC day, and at the end of the run,
as ``InterestCharged`` events (asset loans valued at the instrument's mark
then). Cash loans are the account's, so their interest carries no strategy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from tidemark.core.accounts.portfolio import Portfolio
from tidemark.core.bus import QUIET_FOREVER, Actor, Handler
from tidemark.core.events import Bar, Event, FundingApplied, InterestCharged, OrderFilled
from tidemark.core.instruments import SPOT, point_value, settle_currency

DAY_NS: Final = 86_400_000_000_000
YEAR_NS: Final = 365 * DAY_NS

LoanKey = tuple[str, str]
"""``(strategy, instrument)`` of an asset loan, or ``("", currency)`` of a cash loan."""


class BorrowActor(Actor):
    name = "borrow"

    def __init__(self, portfolio: Portfolio, rate: float) -> None:
        self.portfolio = portfolio
        self.rate = rate
        self.loans: dict[LoanKey, tuple[float, int]] = {}  # key -> (size, accruing since, ns)
        self._next_day = 0

    def subscriptions(self) -> Iterable[tuple[type[Event], Handler, bool]]:
        return (
            (OrderFilled, self.on_change, False),
            (FundingApplied, self.on_change, False),
            (Bar, self.on_bar, False),
        )

    def on_change(self, event: Event) -> None:
        """The account changed: charge every loan whose size changed, up to now."""
        now = self.bus.now()
        current = self._current_loans()
        for key in list(self.loans):
            size, since = self.loans[key]
            if current.get(key, 0.0) != size:
                self._charge(key, size, since, now)
                del self.loans[key]
        for key, size in current.items():
            if key not in self.loans:
                self.loans[key] = (size, now)
        if self.loans and not self._next_day:
            self._next_day = (now // DAY_NS + 1) * DAY_NS

    def on_bar(self, bar: Bar) -> None:
        if self.loans and bar.ts >= self._next_day:
            self._next_day = (bar.ts // DAY_NS + 1) * DAY_NS
            self.settle()

    def bars_quiet_until(self) -> int:
        """Quiet until the next day starts while there are loans."""
        return self._next_day if self.loans else QUIET_FOREVER

    def settle(self) -> None:
        """Charge every loan up to now (a new day, or the end of the run)."""
        now = self.bus.now()
        for key, (size, since) in list(self.loans.items()):
            self._charge(key, size, since, now)
        self.loans = {key: (size, now) for key, size in self._current_loans().items()}

    def _current_loans(self) -> dict[LoanKey, float]:
        pf = self.portfolio
        loans: dict[LoanKey, float] = {}
        currencies: dict[str, None] = {}
        for pos in pf.open_positions():
            inst = pf.instruments[pos.instrument]
            if inst.kind != SPOT:
                continue
            currencies[settle_currency(inst)] = None
            if pos.quantity < 0.0:
                loans[(pos.strategy, pos.instrument)] = -pos.quantity
        for currency in currencies:
            cash = pf.cash_in(currency)
            if cash < 0.0:
                loans[("", currency)] = -cash
        return loans

    def _charge(self, key: LoanKey, size: float, since: int, now: int) -> None:
        if now <= since or size <= 0.0:
            return
        pf = self.portfolio
        strategy, name = key
        years = (now - since) / YEAR_NS
        inst = pf.instruments.get(name) if strategy else None
        if inst is not None:
            mark = pf.marks.get(name, 0.0)
            amount = -size * mark * point_value(inst) * self.rate * years
            currency = settle_currency(inst)
        else:
            mark = 1.0
            amount = -size * self.rate * years
            currency = name
        event = InterestCharged(
            now, strategy, name if inst is not None else "", size, self.rate, since, mark, amount, currency
        )
        pf.apply_interest(event)
        self.bus.publish(event)
