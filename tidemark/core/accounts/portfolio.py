"""One portfolio shared by every strategy of a run.

Positions are kept per (strategy, instrument) with average-price accounting,
so fills are attributed to the strategy that sent them. Cash is kept per
currency; equity is in the account currency.

Identity (checked by property tests, per currency and in total)::

    balance[c] = initial[c] + realized[c] - fees[c] + funding[c] + interest[c]
    equity     = sum(balance[c] * rate[c]) + unrealized      (account currency)

Settlement currencies other than the account's (the coin of an inverse
contract) are converted at the last close of the instrument that prices that
coin in the account currency: the spot pair when the run has one, else a
perpetual, else a dated future (``rate_sources``). Snapshots record the
rates used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from tidemark.core.events import (
    BUY,
    AccountSnapshot,
    FundingApplied,
    InstrumentDefinition,
    InterestCharged,
    OrderFilled,
    PositionChanged,
)
from tidemark.core.instruments import notional, on_grid, pnl, settle_currency

RATE_PRIORITY = {"spot": 0, "perpetual": 1, "future": 2}


@dataclass(slots=True)
class Position:
    """Signed quantity with average entry. For inverse instruments the
    average is the contracts-weighted mean of 1/price (``avg_inverse``)."""

    strategy: str
    instrument: str
    quantity: float = 0.0
    avg_price: float = 0.0
    avg_inverse: float = 0.0
    realized: float = 0.0
    opened_ts: int = 0

    @property
    def side(self) -> int:
        return (self.quantity > 0) - (self.quantity < 0)


@dataclass(slots=True)
class Ledger:
    """Totals for one strategy (or the whole account), settle currency."""

    realized: float = 0.0
    fees: float = 0.0
    funding: float = 0.0
    fills: int = 0
    interest: float = 0.0
    """Interest paid on borrowing (negative), margin accounts."""


@dataclass(slots=True)
class Portfolio:
    """Cash, positions and PnL. ``apply_fill`` is called by the simulated
    venue the moment it fills, so later matching and risk checks in the same
    cascade see the new state; every change is also published as an event."""

    initial_cash: float
    account_currency: str = "USD"
    instruments: dict[str, InstrumentDefinition] = field(default_factory=dict)
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)
    balances: dict[str, float] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    total: Ledger = field(default_factory=Ledger)
    by_currency: dict[str, Ledger] = field(default_factory=dict)
    rate_sources: dict[str, str] = field(default_factory=dict)
    peak_equity: float = 0.0
    snap_to_lot: bool = True
    """A close leaving less than half a lot leaves nothing (rules version 2)."""

    def __post_init__(self) -> None:
        self.balances.setdefault(self.account_currency, float(self.initial_cash))
        self.peak_equity = float(self.initial_cash)

    # -- updates -------------------------------------------------------------

    def add_instrument(self, inst: InstrumentDefinition) -> None:
        self.instruments[inst.instrument] = inst
        currency = settle_currency(inst)
        self.balances.setdefault(currency, 0.0)
        self.by_currency.setdefault(currency, Ledger())
        self._choose_rate_sources()

    def _choose_rate_sources(self) -> None:
        """Per foreign currency C, the instrument that prices C in the account
        currency: a spot C/account pair first, else a perpetual, else a dated
        future (ties: first defined)."""
        foreign = {c for c in self.balances if c != self.account_currency}
        best: dict[str, tuple[int, str]] = {}
        for name, inst in self.instruments.items():
            if inst.base in foreign and inst.quote == self.account_currency:
                rank = RATE_PRIORITY.get(inst.kind, len(RATE_PRIORITY))
                if inst.base not in best or rank < best[inst.base][0]:
                    best[inst.base] = (rank, name)
        self.rate_sources = {name: currency for currency, (_, name) in best.items()}

    def update_rate(self, instrument: str, price: float) -> None:
        """Revalue a settlement currency from an instrument that prices it."""
        currency = self.rate_sources.get(instrument)
        if currency is not None:
            self.rates[currency] = price

    def position(self, strategy: str, instrument: str) -> Position:
        key = (strategy, instrument)
        pos = self.positions.get(key)
        if pos is None:
            pos = self.positions[key] = Position(strategy, instrument)
        return pos

    def apply_fill(self, fill: OrderFilled) -> PositionChanged:
        """Book one fill; returns the PositionChanged event to publish."""
        instrument, strategy, fee = fill.instrument, fill.strategy, fill.fee
        inst = self.instruments[instrument]
        pos = self.position(strategy, instrument)
        signed = fill.quantity if fill.side == BUY else -fill.quantity
        dust = inst.lot_size / 2 if self.snap_to_lot else 0.0
        realized = self._trade(inst, pos, signed, fill.price, fill.ts, dust, snap_flip=self.snap_to_lot)
        currency = settle_currency(inst)
        self.balances[currency] = self.balances.get(currency, 0.0) + realized - fee
        for book in (self._ledger(strategy), self.total, self._currency_ledger(currency)):
            book.realized += realized
            book.fees += fee
            book.fills += 1
        if instrument not in self.marks:
            self.marks[instrument] = fill.price
        return PositionChanged(fill.ts, strategy, instrument, pos.quantity, pos.avg_price, realized, pos.realized)

    def apply_interest(self, event: InterestCharged) -> None:
        self.balances[event.currency] = self.balances.get(event.currency, 0.0) + event.amount
        for book in (self._ledger(event.strategy), self.total, self._currency_ledger(event.currency)):
            book.interest += event.amount

    def apply_funding(self, event: FundingApplied) -> None:
        inst = self.instruments[event.instrument]
        currency = settle_currency(inst)
        self.balances[currency] = self.balances.get(currency, 0.0) + event.amount
        self._ledger(event.strategy).funding += event.amount
        self.total.funding += event.amount
        self._currency_ledger(currency).funding += event.amount

    @staticmethod
    def _trade(
        inst: InstrumentDefinition,
        pos: Position,
        signed: float,
        price: float,
        ts: int,
        dust: float,
        *,
        snap_flip: bool,
    ) -> float:
        """Change ``pos`` by ``signed`` at ``price``; returns realized PnL.
        A reduction leaving less than ``dust`` (or a float residue, 1e-12 of
        the position) closes the position. With ``snap_flip`` (rules version
        2) so does a "flip" through zero by no more than that: selling
        ``0.1 + 0.2`` of a 0.3 holding closes it instead of leaving a short
        of 5.6e-17 (version 1 kept that tiny short; its journals replay as
        they ran)."""
        old = pos.quantity
        new = old + signed
        realized = 0.0
        residue = max(1e-12 * max(1.0, abs(old)), dust)
        if snap_flip and old != 0.0 and abs(signed) > abs(old) and abs(new) < residue:
            signed = -old
            new = 0.0
        if old == 0.0 or (old > 0.0) == (signed > 0.0):
            total = abs(old) + abs(signed)
            if inst.inverse:
                pos.avg_inverse = (abs(old) * pos.avg_inverse + abs(signed) / price) / total
                pos.avg_price = 1.0 / pos.avg_inverse
            else:
                pos.avg_price = (abs(old) * pos.avg_price + abs(signed) * price) / total
            if old == 0.0:
                pos.opened_ts = ts
        else:
            closed = min(abs(signed), abs(old))
            direction = 1.0 if old > 0 else -1.0
            realized = pnl(inst, direction * closed, pos.avg_price, price)
            if abs(signed) > abs(old):  # flip through zero: the rest opens at price
                pos.avg_price = price
                pos.avg_inverse = 1.0 / price
                pos.opened_ts = ts
            elif new == 0.0 or abs(new) < residue:
                new = 0.0
                pos.avg_price = 0.0
                pos.avg_inverse = 0.0
        if dust > 0.0:
            # Rules v2 fill whole lots: the position is a multiple of the lot,
            # kept without the noise of the float sum (212.60699999999997 is
            # 212.607), so selling "all of it", rounded to the lot, is exactly it.
            new = on_grid(new, inst.lot_size)
        pos.quantity = new
        pos.realized += realized
        return realized

    def _currency_ledger(self, currency: str) -> Ledger:
        ledger = self.by_currency.get(currency)
        if ledger is None:
            ledger = self.by_currency[currency] = Ledger()
        return ledger

    def converted(self, field_name: str) -> float:
        """A ledger total (realized, fees, funding) in the account currency at current rates."""
        return sum(getattr(ledger, field_name) * self.rate(cur) for cur, ledger in self.by_currency.items())

    def _ledger(self, strategy: str) -> Ledger:
        ledger = self.ledgers.get(strategy)
        if ledger is None:
            ledger = self.ledgers[strategy] = Ledger()
        return ledger

    # -- reads -----------------------------------------------------------------

    def open_positions(self) -> Iterator[Position]:
        return (p for p in self.positions.values() if p.quantity != 0.0)

    def rate(self, currency: str) -> float:
        """Conversion rate of ``currency`` into the account currency."""
        if currency == self.account_currency:
            return 1.0
        return self.rates.get(currency, 0.0)

    def unrealized_of(self, pos: Position) -> float:
        mark = self.marks.get(pos.instrument)
        if mark is None or pos.quantity == 0.0:
            return 0.0
        return pnl(self.instruments[pos.instrument], pos.quantity, pos.avg_price, mark)

    def unrealized(self, strategy: str | None = None) -> float:
        total = 0.0
        for pos in self.positions.values():
            if pos.quantity != 0.0 and (strategy is None or pos.strategy == strategy):
                inst = self.instruments[pos.instrument]
                total += self.unrealized_of(pos) * self.rate(settle_currency(inst))
        return total

    def cash_in(self, currency: str) -> float:
        """Cash in ``currency``: its balance minus what the spot holdings
        settled in it cost (a spot short adds its proceeds)."""
        spent = 0.0
        for pos in self.open_positions():
            inst = self.instruments[pos.instrument]
            if inst.kind == "spot" and settle_currency(inst) == currency:
                spent += pos.quantity * pos.avg_price * inst.contract_size * inst.multiplier
        return self.balances.get(currency, 0.0) - spent

    def cash(self) -> float:
        """Account-currency cash: each currency's cash at its current rate."""
        return sum(self.cash_in(currency) * self.rate(currency) for currency in self.balances)

    def balance(self) -> float:
        return sum(amount * self.rate(cur) for cur, amount in self.balances.items())

    def equity(self) -> float:
        return self.balance() + self.unrealized()

    def gross_exposure(self, strategy: str | None = None) -> float:
        total = 0.0
        for pos in self.open_positions():
            if strategy is None or pos.strategy == strategy:
                inst = self.instruments[pos.instrument]
                price = self.marks.get(pos.instrument, pos.avg_price)
                total += notional(inst, pos.quantity, price) * (
                    1.0 if inst.inverse else self.rate(settle_currency(inst))
                )
        return total

    def margin(self) -> float:
        """Initial margin posted for margined positions (account currency)."""
        total = 0.0
        for pos in self.open_positions():
            inst = self.instruments[pos.instrument]
            if inst.initial_margin:
                price = self.marks.get(pos.instrument, pos.avg_price)
                rate = 1.0 if inst.inverse else self.rate(settle_currency(inst))
                total += notional(inst, pos.quantity, price) * inst.initial_margin * rate
        return total

    def net_quantity(self, instrument: str) -> float:
        return sum(p.quantity for p in self.positions.values() if p.instrument == instrument)

    def leverage(self) -> float:
        equity = self.equity()
        return self.gross_exposure() / equity if equity > 0 else float("inf")

    def update_peak(self) -> float:
        """Track the equity high-water mark; returns current equity."""
        equity = self.equity()
        if equity > self.peak_equity:
            self.peak_equity = equity
        return equity

    def snapshot(self, ts: int) -> AccountSnapshot:
        equity = self.equity()
        gross = self.gross_exposure()
        return AccountSnapshot(
            ts,
            cash=self.cash(),
            equity=equity,
            realized=self.converted("realized"),
            unrealized=self.unrealized(),
            fees=self.converted("fees"),
            funding=self.converted("funding"),
            gross_exposure=gross,
            leverage=gross / equity if equity > 0 else 0.0,
            margin=self.margin(),
            currencies=tuple(sorted(self.rates)),
            rates=tuple(self.rates[c] for c in sorted(self.rates)),
        )
