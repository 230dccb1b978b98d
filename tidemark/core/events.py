"""Every event tidemark exchanges, as frozen, tagged msgspec Structs.

Invariants shared by all events:

* ``ts`` is the event time in integer nanoseconds since the Unix epoch (UTC).
  For events derived by actors it is the bus clock when they were published.
* Structs are ``array_like``: a payload is ``[tag, field1, field2, ...]``.
  Schema evolution therefore follows msgspec's rules for array-like structs:
  new fields are appended with defaults, existing fields never change type
  or position. An incompatible change gets a new tag and an upcaster
  (see :mod:`core.codec`); old journals are never rewritten.
* Tags are explicit, short and stable. Renaming a class is fine; changing a
  tag breaks every journal ever written and is caught by the golden
  fixtures in ``tests/data/events``.
* Prices and quantities are floats in instrument units; quantities are
  unsigned and ``side`` gives the direction.
"""

from __future__ import annotations

from typing import ClassVar, Final

import msgspec

SCHEMA_VERSION: Final = 1
"""Version of the event schema as a whole; bumped on any tag/shape change."""

BUY: Final = "buy"
SELL: Final = "sell"


class Event(msgspec.Struct, frozen=True, array_like=True, tag_field="t", gc=False):
    """Base of every event. ``ts``: event time, ns since epoch (UTC)."""

    ts: int

    version: ClassVar[int] = 1
    """Shape version of this tag; an upcaster lifts older versions."""


# --------------------------------------------------------------------------
# Market data (inputs). ``ts_recv`` is the local receive stamp of live data
# (0 in backtests); it is journaled data, never read from a clock in core.
# --------------------------------------------------------------------------


class Bar(Event, frozen=True, tag="bar"):
    """One OHLCV bar. ``ts`` is the bar's *close* time; it opened at
    ``ts - interval``. ``last`` is true for the final bar of a timestamp
    group across the run's instruments (multi-symbol strategies act on it)."""

    instrument: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    interval: int
    last: bool = True
    ts_recv: int = 0


class Trade(Event, frozen=True, tag="trade"):
    """A public trade print. ``side`` is the aggressor side."""

    instrument: str
    price: float
    size: float
    side: str
    trade_id: str = ""
    ts_recv: int = 0


class Quote(Event, frozen=True, tag="quote"):
    """Top of book (prices in quote currency, sizes in base units or contracts)."""

    instrument: str
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    ts_recv: int = 0

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2

    @property
    def spread(self) -> float:
        return self.ask - self.bid


class Ticker(Event, frozen=True, tag="ticker"):
    """An exchange's ticker: ``last`` trade price, best ``bid``/``ask`` (0 when
    the exchange's ticker has none) and rolling 24 h volumes in base and quote
    units. An input of live sessions, polled."""

    instrument: str
    last: float
    bid: float = 0.0
    ask: float = 0.0
    base_volume: float = 0.0
    quote_volume: float = 0.0
    ts_recv: int = 0


class BookSnapshot(Event, frozen=True, tag="book"):
    """Full depth snapshot. Bids descending, asks ascending."""

    instrument: str
    bid_prices: tuple[float, ...]
    bid_sizes: tuple[float, ...]
    ask_prices: tuple[float, ...]
    ask_sizes: tuple[float, ...]
    update_id: int = 0
    ts_recv: int = 0


class BookDelta(Event, frozen=True, tag="bookd"):
    """Level updates; a size of 0 removes the level.

    ``first_update_id``..``update_id`` is the exchange's sequence range and
    ``prev_update_id`` the previous message's last id (0 when unknown)."""

    instrument: str
    bid_prices: tuple[float, ...]
    bid_sizes: tuple[float, ...]
    ask_prices: tuple[float, ...]
    ask_sizes: tuple[float, ...]
    first_update_id: int = 0
    update_id: int = 0
    prev_update_id: int = 0
    ts_recv: int = 0


class FundingRate(Event, frozen=True, tag="fund"):
    """Funding rate (fraction per interval) effective at ``ts``."""

    instrument: str
    rate: float
    next_funding_ts: int = 0
    interval: int = 0
    ts_recv: int = 0


class MarkPrice(Event, frozen=True, tag="mark"):
    """Mark (and index) price. ``next_funding_ts``: the next funding time the
    exchange announced with it (0 = unknown); funding due-time checks use it."""

    instrument: str
    price: float
    index_price: float = 0.0
    ts_recv: int = 0
    next_funding_ts: int = 0


class InstrumentDefinition(Event, frozen=True, tag="instr"):
    """Static instrument metadata.

    ``kind``: spot | perpetual | future | equity_future.
    ``contract_size``: units of base per contract (inverse: quote per contract).
    ``multiplier``: point value (PnL per point per contract).
    Fees are fractions of notional (0.0004 = 4 bps); ``fee_per_contract``
    in the settlement currency. ``expiry`` is 0 for non-dated instruments.
    """

    instrument: str
    kind: str = "spot"
    base: str = ""
    quote: str = ""
    settle: str = ""
    inverse: bool = False
    tick_size: float = 0.0
    lot_size: float = 0.0
    min_notional: float = 0.0
    contract_size: float = 1.0
    multiplier: float = 1.0
    maker_fee: float = 0.0
    taker_fee: float = 0.0
    fee_per_contract: float = 0.0
    expiry: int = 0
    initial_margin: float = 0.0
    maintenance_margin: float = 0.0


# --------------------------------------------------------------------------
# Commands (outputs of strategies).
# --------------------------------------------------------------------------


class SubmitOrder(Event, frozen=True, tag="submit"):
    """A new order.

    ``order_type``: market | limit | stop | stop_limit.
    ``tif``: GTC | IOC | FOK | GTD (``expire_ts`` for GTD).
    ``price`` is the limit price, ``trigger_price`` the stop price (0 = none).
    ``stop_loss`` / ``take_profit`` (0 = none) make this the parent of a
    bracket: on fill, the two exits are placed one-cancels-other.
    ``parent_id``: the bracket parent or execution-algorithm parent.
    ``risk_price``: the protective stop used for risk sizing and heat (0 = none).
    """

    strategy: str
    order_id: str
    instrument: str
    side: str
    quantity: float
    order_type: str = "market"
    price: float = 0.0
    trigger_price: float = 0.0
    tif: str = "GTC"
    expire_ts: int = 0
    post_only: bool = False
    reduce_only: bool = False
    stop_loss: float = 0.0
    take_profit: float = 0.0
    parent_id: str = ""
    risk_price: float = 0.0
    tag: str = ""


class SubmitBracketOrder(SubmitOrder, frozen=True, tag="submitb"):
    """A bracket entry whose exits have their own sizes:
    ``take_profit_quantity`` / ``stop_loss_quantity`` are the most the
    take-profit / stop-loss exit may close (0: all the parent filled). As the
    parent fills, each exit grows up to its size; a fill of one exit shrinks
    the other (one-cancels-other), so a partial take-profit leaves the stop on
    the rest. (A plain ``SubmitOrder`` bracket sizes both exits to the fill;
    this is a separate tag so journals of plain brackets keep their bytes.)"""

    take_profit_quantity: float = 0.0
    stop_loss_quantity: float = 0.0


class SubmitAlgo(Event, frozen=True, tag="algo"):
    """A parent order worked by an execution algorithm over time.

    ``algo``: ``twap`` (``slots`` slots of ``slot_interval`` ns from
    ``start_ts``, sized by ``weights`` (one per slot; empty = equal)) or
    ``pov`` (``participation`` of each bar's volume until done).
    ``participation`` also caps each TWAP child (0 = no cap). Children are
    IOC orders with ``parent_id`` = ``algo_id``: market orders, or with
    ``child_type`` ``"limit"`` limits priced off the last bar, ``close +/-
    offsets[k] * (high - low)`` (toward crossing for a positive offset; ``k``
    the number of children in a row that did not fill, capped at the last
    offset), the last slot sweeping at market."""

    strategy: str
    algo_id: str
    instrument: str
    side: str
    quantity: float
    algo: str = "twap"
    start_ts: int = 0
    slots: int = 1
    slot_interval: int = 0
    weights: tuple[float, ...] = ()
    participation: float = 0.0
    tag: str = ""
    child_type: str = "market"
    offsets: tuple[float, ...] = ()


class AlgoFinished(Event, frozen=True, tag="algod"):
    """A parent order is done: ``filled`` of ``quantity`` at ``avg_price``."""

    strategy: str
    algo_id: str
    instrument: str
    quantity: float
    filled: float
    avg_price: float
    children: int


class AlgoCanceled(Event, frozen=True, tag="algox"):
    """A parent order stopped before it was done: a child was refused for a
    reason that would refuse every later child too (``reason``: the
    refusal's code, e.g. ``insufficient_cash``; ``detail``: the child and
    the refusal's own detail). ``filled`` of ``quantity`` at ``avg_price``
    had been done by ``children`` child orders."""

    strategy: str
    algo_id: str
    instrument: str
    quantity: float
    filled: float
    avg_price: float
    children: int
    reason: str
    detail: str = ""


class CancelOrder(Event, frozen=True, tag="cancel"):
    strategy: str
    order_id: str


class ModifyOrder(Event, frozen=True, tag="modify"):
    """Change quantity and/or prices of a working order (0 = unchanged)."""

    strategy: str
    order_id: str
    quantity: float = 0.0
    price: float = 0.0
    trigger_price: float = 0.0


# --------------------------------------------------------------------------
# Execution reports (outputs of the execution actor).
# --------------------------------------------------------------------------


class OrderAccepted(Event, frozen=True, tag="acc"):
    strategy: str
    order_id: str
    instrument: str


class OrderRejected(Event, frozen=True, tag="rej"):
    """``reason``: a machine-readable code, e.g. ``post_only_would_cross``."""

    strategy: str
    order_id: str
    instrument: str
    reason: str
    detail: str = ""


class OrderTriggered(Event, frozen=True, tag="trig"):
    strategy: str
    order_id: str
    instrument: str
    trigger_price: float


class OrderFilled(Event, frozen=True, tag="fill"):
    """One execution.

    ``exec_ts``: market time the price belongs to (bar open for next-open
    fills, bar close for close fills, book update time for book fills).
    ``leaves``: quantity still working after this fill.
    ``liquidity``: maker | taker. ``fee`` in ``fee_currency``.
    ``slippage``: price moved against the order by the slippage model
    (price units, >= 0). ``slippage_model``/``fee_model`` name the model
    actually used (after any fallback). ``source_seq``: the bus sequence of
    the market event matched against; ``levels``: book levels consumed.
    """

    strategy: str
    order_id: str
    fill_id: str
    instrument: str
    side: str
    quantity: float
    price: float
    exec_ts: int
    leaves: float
    liquidity: str
    fee: float
    fee_currency: str = ""
    fee_model: str = ""
    slippage: float = 0.0
    slippage_model: str = ""
    source_seq: int = 0
    levels: int = 0
    latency: int = 0


class OrderCanceled(Event, frozen=True, tag="cxl"):
    strategy: str
    order_id: str
    instrument: str
    reason: str = ""
    leaves: float = 0.0


class OrderExpired(Event, frozen=True, tag="exp"):
    strategy: str
    order_id: str
    instrument: str
    leaves: float = 0.0


# --------------------------------------------------------------------------
# Portfolio (outputs).
# --------------------------------------------------------------------------


class PositionChanged(Event, frozen=True, tag="pos"):
    """Position of ``strategy`` in ``instrument`` after a fill.

    ``quantity`` is signed (negative = short). ``realized`` is the realized
    PnL of this change in the settlement currency, before fees."""

    strategy: str
    instrument: str
    quantity: float
    avg_price: float
    realized: float
    realized_total: float


class FundingApplied(Event, frozen=True, tag="funda"):
    """Funding paid (negative) or received (positive) by a position.

    ``amount = -quantity * contract_value(mark) * rate``: longs pay when the
    rate is positive. ``source``: feed | history | fallback."""

    strategy: str
    instrument: str
    quantity: float
    rate: float
    mark: float
    amount: float
    currency: str = ""
    source: str = "feed"


class FundingUnavailable(Event, frozen=True, tag="fundu"):
    """No funding rate could be had for a due funding time; ``fallback``
    names the explicit policy applied (e.g. ``rate:0.0001`` or ``skip``)."""

    instrument: str
    funding_ts: int
    fallback: str


class AccountSnapshot(Event, frozen=True, tag="acct"):
    """Account state in the account currency. Identity, checked in tests:
    ``equity == initial + realized + unrealized - fees + funding``.
    ``currencies``/``rates``: each other settlement currency and the rate used
    to convert it (the last close of an instrument quoting it)."""

    cash: float
    equity: float
    realized: float
    unrealized: float
    fees: float
    funding: float
    gross_exposure: float
    leverage: float
    margin: float = 0.0
    currencies: tuple[str, ...] = ()
    rates: tuple[float, ...] = ()


class InterestCharged(Event, frozen=True, tag="intr"):
    """Interest on what a margin account borrowed, for ``since`` .. ``ts``.

    ``borrowed``: the asset quantity lent for a spot short (``instrument`` set)
    or the cash lent for a levered spot long (``instrument`` empty), constant
    over the period; ``rate``: annual fraction (365-day year); ``amount``:
    negative, in ``currency`` (asset loans are valued at ``mark``)."""

    strategy: str
    instrument: str
    borrowed: float
    rate: float
    since: int
    mark: float
    amount: float
    currency: str


class TradingHalted(Event, frozen=True, tag="halt"):
    """The account stopped trading: ``reason`` (``equity_zero``: equity
    reached zero with margined positions open; they were liquidated). Every
    later order is refused with reason ``trading_halted``."""

    reason: str
    equity: float


class RiskRejected(Event, frozen=True, tag="risk"):
    """A pre-trade refusal. ``reason`` is a code from :mod:`tidemark.core.accounts.risk`."""

    strategy: str
    order_id: str
    instrument: str
    reason: str
    detail: str = ""


class MarginCall(Event, frozen=True, tag="mcall"):
    instrument: str
    equity: float
    maintenance: float


class Liquidation(Event, frozen=True, tag="liq"):
    strategy: str
    instrument: str
    quantity: float
    price: float
    fee: float


# --------------------------------------------------------------------------
# Lifecycle.
# --------------------------------------------------------------------------


class RunStarted(Event, frozen=True, tag="start"):
    """Run header, always seq 1. ``config`` is canonical JSON of the full run
    config; ``fingerprints`` is JSON ``{name: sha256}`` of every data input;
    ``seed`` drives every random choice of the run."""

    run_id: str
    config: str
    config_hash: str
    fingerprints: str
    package_version: str
    seed: int = 0
    parent_run_id: str = ""
    mode: str = "backtest"


class Timer(Event, frozen=True, tag="timer"):
    name: str


class FeedGap(Event, frozen=True, tag="gap"):
    """The feed for ``instrument`` is broken (stale, sequence gap, crossed)."""

    instrument: str
    reason: str
    detail: str = ""
    resynced: bool = False
    ts_recv: int = 0


class StrategyReloaded(Event, frozen=True, tag="reload"):
    """A live session swapped in new strategy code (``--watch``). An input:
    the source travels in the journal, so replay swaps at the same point."""

    strategy: str
    source: str
    origin: str = ""


class RunFinished(Event, frozen=True, tag="finish"):
    status: str
    events: int


class StrategyRecord(Event, frozen=True, tag="rec"):
    """A value a strategy records at the current step (``ctx.record``): an
    extra equity column such as open risk or a risk scalar."""

    strategy: str
    name: str
    value: float


class StrategyCount(Event, frozen=True, tag="cnt"):
    """A count a strategy keeps (``ctx.count``): ``n`` more of ``name`` for
    ``key`` (e.g. rejections by reason)."""

    strategy: str
    name: str
    key: str = ""
    n: int = 1


class RunFailed(Event, frozen=True, tag="fail"):
    """The last record of a run that did not finish: ``status`` is
    ``failed`` (an error) or ``interrupted`` (a signal); ``error`` the
    error in one line; ``trace`` a summary of where it was raised
    (``file:line in function``, innermost last); ``fault_seq`` the seq of the
    event whose handler raised (0: the cause came from outside the run: a
    signal, the disk, the writer, the feed). An input written by the
    runner, never by an actor: replay does not feed it."""

    status: str
    error: str = ""
    trace: tuple[str, ...] = ()
    fault_seq: int = 0


class Checkpoint(Event, frozen=True, tag="ckpt"):
    """A signed anchor of a live session: ``signature`` (Ed25519, hex) over
    the run id, ``seq`` and ``head`` (hex chain hash of record ``seq``, the
    record before this one), by the key whose fingerprint ``key`` is (and
    the run header names). An input that no actor reads."""

    seq: int
    head: str
    signature: str
    key: str


class Log(Event, frozen=True, tag="log"):
    """A strategy log line that is part of the run's record."""

    source: str
    level: str
    message: str


class SweepPoint(Event, frozen=True, tag="swpt"):
    """One point of a parameter sweep, in the sweep's manifest (a journal
    whose header has mode ``sweep`` and the sweep's spec as its config).
    ``index``: the point's place in the spec's order; ``params``: canonical
    JSON; ``status``: ``ok``, ``invalid`` (refused before it ran: its
    parameters) or ``failed``; ``run_id``, ``head`` and ``journal`` (path
    relative to the manifest) name the point's own journal, whose chain must
    pass through ``head``; ``metrics``: canonical JSON of its summary row;
    ``error``: one line. Written in index order, so a sweep's manifest is
    the same bytes however many workers ran it."""

    index: int
    params: str
    status: str
    run_id: str = ""
    head: str = ""
    journal: str = ""
    metrics: str = ""
    error: str = ""


MarketEvent = Bar | Trade | Quote | Ticker | BookSnapshot | BookDelta | FundingRate | MarkPrice

AnyEvent = (
    Bar
    | Trade
    | Quote
    | BookSnapshot
    | BookDelta
    | FundingRate
    | MarkPrice
    | InstrumentDefinition
    | SubmitOrder
    | SubmitAlgo
    | AlgoFinished
    | CancelOrder
    | ModifyOrder
    | OrderAccepted
    | OrderRejected
    | OrderTriggered
    | OrderFilled
    | OrderCanceled
    | OrderExpired
    | PositionChanged
    | FundingApplied
    | FundingUnavailable
    | AccountSnapshot
    | RiskRejected
    | MarginCall
    | Liquidation
    | RunStarted
    | Timer
    | FeedGap
    | StrategyReloaded
    | RunFinished
    | RunFailed
    | Checkpoint
    | Log
    | Ticker
    | InterestCharged
    | TradingHalted
    | SubmitBracketOrder
    | StrategyRecord
    | StrategyCount
    | AlgoCanceled
    | SweepPoint
)
"""The union of every current event type; the journal decodes with it."""

EVENT_TYPES: tuple[type[Event], ...] = AnyEvent.__args__


def tag_of(cls: type[Event]) -> str:
    """The stable wire tag of an event class."""
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


TAGS: dict[type[Event], str] = {cls: tag_of(cls) for cls in EVENT_TYPES}
"""Class -> tag, in union order (a dict: iteration order is fixed)."""
