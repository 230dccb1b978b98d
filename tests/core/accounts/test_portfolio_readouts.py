"""Portfolio read-outs, hand-computed: cash, gross exposure (inverse too),
margin for inverse and foreign-settled linear contracts, leverage, snapshots,
net quantity, dust snapping and the choice of conversion rate (issue 25)."""

from __future__ import annotations

import math

import pytest

from tidemark.core.accounts.portfolio import Portfolio, Position
from tidemark.core.events import FundingApplied, InstrumentDefinition, InterestCharged, OrderFilled
from tidemark.core.instruments import spot

X = spot("X")
WIDE = InstrumentDefinition(0, "W", kind="spot", base="W", quote="USD", settle="USD", contract_size=2.0, multiplier=1.5)
INVERSE = InstrumentDefinition(
    0,
    "BTCUSD",
    kind="perpetual",
    base="BTC",
    quote="USD",
    settle="BTC",
    inverse=True,
    contract_size=100.0,
    initial_margin=0.1,
)
BTC_SPOT = InstrumentDefinition(0, "BTC/USD", kind="spot", base="BTC", quote="USD", settle="USD")
BTC_PERP = InstrumentDefinition(0, "BTC-PERP", kind="perpetual", base="BTC", quote="USD", settle="USD")
BTC_PERP2 = InstrumentDefinition(0, "BTC-PERP2", kind="perpetual", base="BTC", quote="USD", settle="USD")
BTC_FUT = InstrumentDefinition(0, "BTC-FUT", kind="future", base="BTC", quote="USD", settle="USD")
BTC_EQF = InstrumentDefinition(0, "BTC-EQF", kind="equity_future", base="BTC", quote="USD", settle="USD")
# Linear, quoted and settled in BTC: notional and margin are in BTC, converted at the BTC rate.
ETHBTC = InstrumentDefinition(
    0, "ETHBTC", kind="perpetual", base="ETH", quote="BTC", settle="BTC", contract_size=10.0, initial_margin=0.05
)
ETHBTC_SPOT = InstrumentDefinition(0, "ETH/BTC", kind="spot", base="ETH", quote="BTC", settle="BTC")
PERP = InstrumentDefinition(0, "P", kind="perpetual", base="P", quote="USD", settle="USD", initial_margin=0.2)


def fill(
    side: str, qty: float, price: float, instrument: str = "X", fee: float = 0.0, strategy: str = "s", ts: int = 1
) -> OrderFilled:
    return OrderFilled(ts, strategy, "o", "f", instrument, side, qty, price, ts, 0.0, "taker", fee)


def book(*instruments: InstrumentDefinition, cash: float = 10_000.0, snap_to_lot: bool = True) -> Portfolio:
    pf = Portfolio(cash, snap_to_lot=snap_to_lot)
    for inst in instruments:
        pf.add_instrument(inst)
    return pf


# -- cash --------------------------------------------------------------------


def test_cash_pays_for_spot_holdings_and_a_spot_short_adds_its_proceeds() -> None:
    pf = book(X, PERP)
    pf.apply_fill(fill("buy", 2, 100, fee=1.0))
    assert pf.balance() == 9_999.0
    assert pf.cash() == 9_999.0 - 200.0
    pf.apply_fill(fill("sell", 3, 50))  # closes 2 (realized -100), short 1 at 50
    assert pf.balances["USD"] == pytest.approx(9_999.0 - 100.0)
    assert pf.cash() == pytest.approx(9_899.0 + 50.0)
    pf.apply_fill(fill("buy", 4, 25, instrument="P"))  # a derivative costs no cash
    assert pf.cash() == pytest.approx(9_949.0)


def test_cash_uses_contract_size_and_multiplier() -> None:
    pf = book(WIDE)
    pf.apply_fill(fill("buy", 3, 10, instrument="W"))
    assert pf.cash() == pytest.approx(10_000 - 3 * 10 * 2 * 1.5)


def test_cash_in_a_foreign_currency_converts_at_its_rate() -> None:
    pf = book(BTC_SPOT, ETHBTC_SPOT)
    pf.balances["BTC"] = 2.0
    pf.update_rate("BTC/USD", 30_000.0)
    pf.apply_fill(fill("buy", 10, 0.05, instrument="ETH/BTC"))  # costs 0.5 BTC
    assert pf.cash_in("BTC") == pytest.approx(1.5)
    assert pf.cash_in("USD") == 10_000.0
    assert pf.cash() == pytest.approx(10_000 + 1.5 * 30_000)
    assert pf.balance() == pytest.approx(10_000 + 2.0 * 30_000)


# -- exposure, margin, leverage ---------------------------------------------


def test_gross_exposure_counts_longs_shorts_inverse_and_foreign_linear() -> None:
    pf = book(X, INVERSE, ETHBTC, BTC_SPOT)
    pf.update_rate("BTC/USD", 40_000.0)
    pf.apply_fill(fill("buy", 2, 100))  # no mark yet: marked at the fill price
    assert pf.gross_exposure() == 200.0
    pf.marks["X"] = 110.0
    assert pf.gross_exposure() == 220.0
    pf.apply_fill(fill("sell", 3, 39_000, instrument="BTCUSD", strategy="t"))  # 3 contracts x 100 USD
    pf.apply_fill(fill("sell", 4, 0.07, instrument="ETHBTC", strategy="t"))  # 4 x 10 x 0.07 = 2.8 BTC
    expected_t = 300.0 + 2.8 * 40_000
    assert pf.gross_exposure("t") == pytest.approx(expected_t)
    assert pf.gross_exposure("s") == 220.0
    assert pf.gross_exposure() == pytest.approx(220.0 + expected_t)


def test_margin_for_inverse_and_foreign_settled_linear() -> None:
    pf = book(X, INVERSE, ETHBTC, BTC_SPOT, PERP)
    pf.update_rate("BTC/USD", 40_000.0)
    pf.apply_fill(fill("buy", 5, 100))  # spot: no initial margin
    assert pf.margin() == 0.0
    pf.apply_fill(fill("sell", 3, 39_000, instrument="BTCUSD"))
    assert pf.margin() == pytest.approx(3 * 100 * 0.1)  # USD, whatever the BTC rate
    pf.apply_fill(fill("buy", 4, 0.07, instrument="ETHBTC"))
    assert pf.margin() == pytest.approx(30.0 + 4 * 10 * 0.07 * 0.05 * 40_000)
    pf.marks["ETHBTC"] = 0.08
    pf.apply_fill(fill("sell", 2, 50, instrument="P"))
    pf.marks["P"] = 60.0
    assert pf.margin() == pytest.approx(30.0 + 4 * 10 * 0.08 * 0.05 * 40_000 + 2 * 60 * 0.2)


def test_leverage_and_snapshot_at_positive_and_zero_equity() -> None:
    pf = book(PERP, cash=1_000.0)
    pf.apply_fill(fill("buy", 10, 200, instrument="P", fee=4.0))
    pf.marks["P"] = 190.0  # unrealized -100
    assert pf.equity() == pytest.approx(896.0)
    assert pf.leverage() == pytest.approx(1_900 / 896)
    snap = pf.snapshot(7)
    assert snap.ts == 7
    assert snap.equity == pytest.approx(896.0)
    assert snap.cash == pytest.approx(996.0)
    assert snap.unrealized == pytest.approx(-100.0)
    assert snap.fees == pytest.approx(4.0)
    assert snap.realized == 0.0
    assert snap.gross_exposure == pytest.approx(1_900.0)
    assert snap.leverage == pytest.approx(1_900 / 896)
    assert snap.margin == pytest.approx(1_900 * 0.2)
    pf.marks["P"] = 100.4  # unrealized -996: equity exactly 0
    assert pf.equity() == pytest.approx(0.0, abs=1e-9)
    pf.marks["P"] = 100.0
    assert pf.equity() == pytest.approx(-4.0)
    assert pf.leverage() == math.inf
    assert pf.snapshot(8).leverage == 0.0


def test_snapshot_records_funding_and_the_rates_sorted() -> None:
    pf = book(INVERSE, ETHBTC, cash=5_000.0)
    pf.update_rate("BTCUSD", 50_000.0)  # the inverse perpetual prices its own coin
    pf.rates["AAA"] = 2.0
    pf.apply_funding(FundingApplied(1, "s", "BTCUSD", 1.0, 0.0001, 50_000.0, -0.001, "BTC"))
    snap = pf.snapshot(1)
    assert snap.funding == pytest.approx(-0.001 * 50_000)
    assert snap.currencies == ("AAA", "BTC")
    assert snap.rates == (2.0, 50_000.0)
    assert pf.total.funding == pytest.approx(-0.001)
    assert pf.ledgers["s"].funding == pytest.approx(-0.001)
    assert pf.by_currency["BTC"].funding == pytest.approx(-0.001)
    assert pf.balances["BTC"] == pytest.approx(-0.001)


def test_interest_is_booked_per_strategy_currency_and_total() -> None:
    pf = book(X)
    pf.apply_interest(InterestCharged(1, "s", "", 100.0, 0.1, 0, 0.0, -2.5, "USD"))
    pf.apply_interest(InterestCharged(2, "s", "", 100.0, 0.1, 1, 0.0, -0.5, "USD"))
    assert pf.balances["USD"] == pytest.approx(9_997.0)
    assert pf.total.interest == pytest.approx(-3.0)
    assert pf.ledgers["s"].interest == pytest.approx(-3.0)
    assert pf.by_currency["USD"].interest == pytest.approx(-3.0)


def test_realized_and_fees_in_a_coin_convert_at_the_current_rate() -> None:
    pf = book(INVERSE, cash=0.0)
    pf.update_rate("BTCUSD", 40_000.0)
    pf.apply_fill(fill("buy", 100, 40_000, instrument="BTCUSD", fee=0.0001))
    change = pf.apply_fill(fill("sell", 100, 50_000, instrument="BTCUSD", fee=0.0002))
    coin = 100 * 100 * (1 / 40_000 - 1 / 50_000)
    assert change.realized == pytest.approx(coin, rel=1e-12)
    assert pf.converted("realized") == pytest.approx(coin * 40_000, rel=1e-12)
    assert pf.converted("fees") == pytest.approx(0.0003 * 40_000, rel=1e-12)
    assert pf.total.fills == 2 and pf.ledgers["s"].fills == 2 and pf.by_currency["BTC"].fills == 2
    assert pf.balances["BTC"] == pytest.approx(coin - 0.0003, rel=1e-12)


def test_unrealized_of_inverse_in_the_coin_and_in_the_account_currency() -> None:
    pf = book(INVERSE, cash=0.0)
    pf.update_rate("BTCUSD", 50_000.0)
    pf.apply_fill(fill("buy", 100, 40_000, instrument="BTCUSD"))
    pf.apply_fill(fill("buy", 100, 60_000, instrument="BTCUSD"))
    pos = pf.positions[("s", "BTCUSD")]
    assert pos.avg_price == pytest.approx(2 / (1 / 40_000 + 1 / 60_000), rel=1e-12)  # 48,000
    pf.marks["BTCUSD"] = 50_000.0
    coin = 200 * 100 * (1 / 48_000 - 1 / 50_000)
    assert pf.unrealized_of(pos) == pytest.approx(coin, rel=1e-9)
    assert pf.unrealized() == pytest.approx(coin * 50_000, rel=1e-9)
    assert pf.unrealized("other") == 0.0
    assert pf.equity() == pytest.approx(coin * 50_000, rel=1e-9)


def test_unrealized_needs_a_mark() -> None:
    pf = book(X)
    pos = Position("s", "X", quantity=1.0, avg_price=10.0)
    pf.positions[("s", "X")] = pos
    assert pf.unrealized_of(pos) == 0.0  # no mark yet
    pf.marks["X"] = 12.0
    assert pf.unrealized_of(pos) == 2.0
    assert pf.unrealized_of(Position("s", "X")) == 0.0


def test_first_fill_sets_the_mark_later_fills_do_not() -> None:
    pf = book(X)
    pf.apply_fill(fill("buy", 1, 100))
    assert pf.marks["X"] == 100
    pf.apply_fill(fill("buy", 1, 120))
    assert pf.marks["X"] == 100


def test_peak_equity_is_a_high_water_mark() -> None:
    pf = book(X, cash=100.0)
    assert pf.peak_equity == 100.0
    pf.apply_fill(fill("buy", 1, 50))
    pf.marks["X"] = 70.0
    assert pf.update_peak() == 120.0 and pf.peak_equity == 120.0
    pf.marks["X"] = 40.0
    assert pf.update_peak() == 90.0 and pf.peak_equity == 120.0


# -- positions ------------------------------------------------------------------


def test_net_quantity_sums_strategies_of_one_instrument_only() -> None:
    pf = book(X, PERP)
    pf.apply_fill(fill("buy", 3, 10, strategy="a"))
    pf.apply_fill(fill("sell", 5, 10, strategy="b"))
    pf.apply_fill(fill("buy", 7, 10, instrument="P", strategy="a"))
    assert pf.net_quantity("X") == -2
    assert pf.net_quantity("P") == 7
    assert pf.net_quantity("none") == 0
    assert [p.quantity for p in pf.open_positions()] == [3, -5, 7]


def test_side_and_opened_time() -> None:
    pf = book(X)
    pf.apply_fill(fill("buy", 2, 10, ts=5))
    pos = pf.positions[("s", "X")]
    assert pos.side == 1 and pos.opened_ts == 5
    pf.apply_fill(fill("buy", 2, 12, ts=6))  # adding keeps the opening time
    assert pos.opened_ts == 5 and pos.avg_price == 11
    pf.apply_fill(fill("sell", 1, 12, ts=7))  # reducing too
    assert pos.opened_ts == 5
    pf.apply_fill(fill("sell", 5, 9, ts=8))  # flip: the short opens now, at 9
    assert pos.side == -1 and pos.opened_ts == 8 and pos.avg_price == 9 and pos.quantity == -2
    assert pos.avg_inverse == pytest.approx(1 / 9)
    assert pos.realized == pytest.approx(1 * 1 + 3 * -2)
    pf.apply_fill(fill("sell", 1, 6, ts=9))  # adding to the short averages
    assert pos.avg_price == pytest.approx(8.0)
    pf.apply_fill(fill("buy", 3, 5, ts=10))
    assert pos.side == 0 and pos.quantity == 0.0 and pos.avg_price == 0.0 and pos.avg_inverse == 0.0


def test_a_short_realizes_when_bought_back() -> None:
    pf = book(X)
    pf.apply_fill(fill("sell", 4, 50))
    change = pf.apply_fill(fill("buy", 1, 40))
    assert change.realized == 10.0
    assert change.quantity == -3 and change.avg_price == 50
    assert change.realized_total == 10.0


# -- dust ---------------------------------------------------------------------------

LOT = InstrumentDefinition(0, "L", kind="spot", base="L", quote="USD", settle="USD", lot_size=0.001)


def test_closing_a_large_position_leaves_no_dust() -> None:
    pf = book(X, cash=1e9)
    pf.apply_fill(fill("buy", 1e7, 1.0))
    pf.apply_fill(fill("sell", 1e7 - 1e-6, 1.0))  # a float residue of the size of 1e-13 relative
    pos = pf.positions[("s", "X")]
    assert pos.quantity == 0.0 and pos.avg_price == 0.0
    pf.apply_fill(fill("buy", 1e7, 1.0))
    pf.apply_fill(fill("sell", 1e7 - 1e-3, 1.0))  # a real remainder stays
    assert pos.quantity == pytest.approx(1e-3)


def test_float_residue_after_closing_is_flat_not_a_tiny_position() -> None:
    pf = book(X)
    pf.apply_fill(fill("buy", 0.1, 10))
    pf.apply_fill(fill("buy", 0.2, 10))  # 0.30000000000000004
    pf.apply_fill(fill("sell", 0.3, 10))
    assert pf.positions[("s", "X")].quantity == 0.0
    assert list(pf.open_positions()) == []


def test_selling_a_float_residue_more_than_held_is_flat_not_a_tiny_short() -> None:
    pf = book(X)
    pf.apply_fill(fill("buy", 0.3, 10))
    pf.apply_fill(fill("sell", 0.1 + 0.2, 11))  # 0.30000000000000004: the residue is float error
    pos = pf.positions[("s", "X")]
    assert pos.quantity == 0.0 and pos.avg_price == 0.0
    assert list(pf.open_positions()) == []
    assert pos.realized == pytest.approx(0.3)


def test_legacy_rules_keep_the_tiny_short() -> None:
    # Rules version 1 (no snapping to lots) books what it always booked; old journals replay unchanged.
    pf = book(X, snap_to_lot=False)
    pf.apply_fill(fill("buy", 0.3, 10))
    pf.apply_fill(fill("sell", 0.1 + 0.2, 11))
    assert pf.positions[("s", "X")].quantity == pytest.approx(-5.55e-17, rel=0.01)


def test_a_close_leaving_less_than_half_a_lot_snaps_to_flat() -> None:
    pf = book(LOT)
    pf.apply_fill(fill("buy", 2.0, 10, instrument="L"))
    pf.apply_fill(fill("sell", 1.9996, 10, instrument="L"))  # 0.0004 left: under half a lot
    assert pf.positions[("s", "L")].quantity == 0.0
    pf.apply_fill(fill("buy", 2.0, 10, instrument="L"))
    pf.apply_fill(fill("sell", 1.9994, 10, instrument="L"))  # 0.0006 left: over half a lot
    assert pf.positions[("s", "L")].quantity == pytest.approx(0.0006)
    legacy = book(LOT, snap_to_lot=False)
    legacy.apply_fill(fill("buy", 2.0, 10, instrument="L"))
    legacy.apply_fill(fill("sell", 1.9996, 10, instrument="L"))
    assert legacy.positions[("s", "L")].quantity == pytest.approx(0.0004)


# -- conversion rates -----------------------------------------------------------------


def test_rate_source_prefers_spot_then_perpetual_then_future() -> None:
    pf = book(ETHBTC, BTC_EQF, BTC_FUT)  # ETHBTC settles in BTC; it does not price BTC
    assert pf.rate_sources == {"BTC-FUT": "BTC"}
    pf.add_instrument(BTC_PERP)
    pf.add_instrument(BTC_PERP2)
    assert pf.rate_sources == {"BTC-PERP": "BTC"}  # ties: the first defined
    pf.update_rate("BTC-FUT", 1.0)
    pf.update_rate("BTC-PERP2", 2.0)
    assert pf.rate("BTC") == 0.0  # neither is the source
    pf.update_rate("BTC-PERP", 45_000.0)
    assert pf.rate("BTC") == 45_000.0
    pf.add_instrument(BTC_SPOT)
    assert pf.rate_sources == {"BTC/USD": "BTC"}
    assert pf.rate("USD") == 1.0


def test_an_unknown_kind_ranks_after_futures() -> None:
    pf = book(ETHBTC, BTC_EQF)
    assert pf.rate_sources == {"BTC-EQF": "BTC"}
    pf.add_instrument(BTC_FUT)
    assert pf.rate_sources == {"BTC-FUT": "BTC"}


def test_only_instruments_quoted_in_the_account_currency_price_a_coin() -> None:
    eur = InstrumentDefinition(0, "BTC/EUR", kind="spot", base="BTC", quote="EUR", settle="EUR")
    pf = book(ETHBTC, eur)
    assert pf.rate_sources == {}
    assert pf.rate("BTC") == 0.0


def test_defaults_of_a_new_position_and_portfolio() -> None:
    pf = Portfolio(50.0)
    assert pf.snap_to_lot is True  # rules version 2 unless told otherwise
    assert pf.balances == {"USD": 50.0} and pf.account_currency == "USD"
    pos = pf.position("s", "X")
    assert (pos.quantity, pos.avg_price, pos.avg_inverse, pos.realized, pos.opened_ts) == (0.0, 0.0, 0.0, 0.0, 0)
    assert pf.position("s", "X") is pos
    assert pos.side == 0
    assert Position("s", "X", quantity=0.5).side == 1 and Position("s", "X", quantity=-0.5).side == -1


def test_leverage_at_exactly_zero_equity() -> None:
    pf = book(PERP, cash=1_000.0)
    pf.apply_fill(fill("buy", 10, 200, instrument="P"))
    pf.marks["P"] = 100.0  # unrealized -1,000: equity exactly 0
    assert pf.equity() == 0.0
    assert pf.leverage() == math.inf
    assert pf.snapshot(1).leverage == 0.0


def test_interest_in_a_currency_without_a_balance_yet() -> None:
    pf = book(X)
    pf.apply_interest(InterestCharged(1, "s", "EUR", 10.0, 0.1, 0, 0.0, -2.5, "EUR"))
    assert pf.balances["EUR"] == -2.5
    assert pf.by_currency["EUR"].interest == -2.5


def test_a_float_residue_beyond_a_one_unit_position_closes_it() -> None:
    pf = book(X)
    pf.apply_fill(fill("buy", 1.0, 10))
    pf.apply_fill(fill("sell", 1.0000000000000002, 10))
    assert pf.positions[("s", "X")].quantity == 0.0


def test_leverage_below_one_unit_of_equity() -> None:
    pf = book(PERP, cash=1_000.0)
    pf.apply_fill(fill("buy", 10, 200, instrument="P"))
    pf.marks["P"] = 100.05  # equity 0.5
    assert pf.equity() == pytest.approx(0.5)
    assert pf.leverage() == pytest.approx(1_000.5 / 0.5)
    assert pf.snapshot(1).leverage == pytest.approx(1_000.5 / 0.5)


def test_cash_in_a_currency_never_held_is_zero() -> None:
    assert book(X).cash_in("JPY") == 0.0


def test_residue_threshold_is_one_trillionth_of_at_least_one_unit() -> None:
    pf = book(X)
    pf.apply_fill(fill("buy", 1.0, 10))
    pf.apply_fill(fill("sell", 1.0 - 1.5e-12, 10))  # 1.5e-12 left: more than 1e-12 of one unit
    assert pf.positions[("s", "X")].quantity == pytest.approx(1.5e-12, rel=1e-3)


def test_a_reduction_leaving_one_unit_or_exactly_half_a_lot_keeps_it() -> None:
    pf = book(X)
    pf.apply_fill(fill("buy", 3, 10))
    pf.apply_fill(fill("sell", 2, 10))
    assert pf.positions[("s", "X")].quantity == 1.0
    half = InstrumentDefinition(0, "HL", kind="spot", base="HL", quote="USD", settle="USD", lot_size=0.5)
    pf.add_instrument(half)
    pf.apply_fill(fill("buy", 1.0, 10, instrument="HL"))
    pf.apply_fill(fill("sell", 0.75, 10, instrument="HL"))  # exactly half a lot left: not less than half
    assert pf.positions[("s", "HL")].quantity == 0.25


def test_a_flip_leaving_exactly_half_a_lot_keeps_the_new_position() -> None:
    pf = book(InstrumentDefinition(0, "HL", kind="spot", base="HL", quote="USD", settle="USD", lot_size=0.5))
    pf.apply_fill(fill("buy", 1.0, 10, instrument="HL"))
    pf.apply_fill(fill("sell", 1.25, 12, instrument="HL"))  # closes 1, opens a short of exactly half a lot
    pos = pf.positions[("s", "HL")]
    assert (pos.quantity, pos.avg_price) == (-0.25, 12.0)
