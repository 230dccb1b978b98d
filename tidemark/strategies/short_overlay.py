"""A BTC risk-off short overlay on perpetuals (the seed's system 001).

The first symbol of the run is the BTC reference; the others may be
shorted. At each close of a ``bar`` (``1h``, or ``4h`` built causally from
the run's 1h bars: a 4h bar is used from the step its last hour closes),
the strategy computes seed 001's target weights from the closes it has
seen (:func:`tidemark.adapters.research.overlay.overlay_weights`):

* the BTC risk state: BTC below its SMA(``btc_trend``), its
  ``btc_lookback``-bar momentum at most ``btc_max_momentum`` and at most
  ``-btc_min_drop``, its annualised volatility (365-day years) over
  ``vol_lookback`` bars at least ``min_btc_vol``;
* ``family=btc_risk_pair``: in the risk state, short every shortable symbol
  at ``-1 / their number``; ``family=btc_breakdown_symbol``: short those
  below their own SMA(``symbol_trend``) with a ``btc_lookback``-bar momentum
  at most ``symbol_max_momentum``, equally (weights sum to -1).

It then trades to those weights: quantity ``equity x weight / (price x
point value)``, sells first. With ``rebalance=change`` (default) it trades
only when the target weights change, and holds the *quantities* in between
(the position drifts with the price); ``rebalance=bar`` re-targets at every
close of ``bar``. Fees are the run's, on the notional traded. Lengths are
in bars of ``bar``; run it on a margin account with perpetuals (shorts),
for example ``docs/examples/short_overlay_seed001.json``. Coarser bars are
built with ``ctx.data[symbol].resample``, so a ``bar`` longer than the
run's bars works in backtests (and sweeps), not in paper sessions.

Seed 001 held *weights* instead: rebalanced every bar for free, a fee of
``|change of weight| x 0.04 %`` of equity (the research model,
:func:`tidemark.adapters.research.overlay.equity_from_weights`). The
weights are the same (tests/strategies/test_short_overlay.py); the equity
differs by the drift between changes and the fees by the drifted exit
notional.

Options (``--param name=value``); the defaults are one of seed 001's 4h
sets:

``family`` ``btc_breakdown_symbol``, ``bar`` ``4h``
``btc_trend`` 720, ``btc_lookback`` 84, ``symbol_trend`` 180, ``vol_lookback`` 84
``btc_max_momentum`` -0.005, ``btc_min_drop`` 0.05, ``min_btc_vol`` 0.03, ``symbol_max_momentum`` 0.0
``shorts`` ``all``
    ``all``: every symbol after the first may be shorted; ``first``: only
    the second symbol of the run (the seed's ETH-only sets).
``rebalance`` ``change``, ``fill`` ``run``
    When orders fill: ``run`` (the run's fill model), ``close`` (this bar's
    close: the seed's timing, a weight decided at a close is held from that
    close) or ``open`` (the next open).
``record`` false
    Journal ``weight_<symbol>``, the target weight of each symbol, at every
    close of ``bar`` (``Result.records``).
"""

import numpy as np
import pandas as pd

from tidemark.adapters.research.overlay import FAMILIES, ShortOverlay, overlay_weights

INDICATOR = "short_overlay_weights"


def schema():
    return {
        "id": "short_overlay",
        "name": "BTC risk-off short overlay on perpetuals (seed 001)",
        "category": "overlay",
        "inputs": {
            "family": {"type": "select", "default": "btc_breakdown_symbol", "options": list(FAMILIES)},
            "bar": {"type": "select", "default": "4h", "options": ["1h", "4h"]},
            "btc_trend": {"type": "int", "default": 720, "min": 1, "max": 1_000_000},
            "btc_lookback": {"type": "int", "default": 84, "min": 1, "max": 1_000_000},
            "symbol_trend": {"type": "int", "default": 180, "min": 1, "max": 1_000_000},
            "vol_lookback": {"type": "int", "default": 84, "min": 2, "max": 1_000_000},
            "btc_max_momentum": {"type": "float", "default": -0.005, "min": -1.0, "max": 100.0},
            "btc_min_drop": {"type": "float", "default": 0.05, "min": -100.0, "max": 1.0},
            "min_btc_vol": {"type": "float", "default": 0.03, "min": 0.0, "max": 100.0},
            "symbol_max_momentum": {"type": "float", "default": 0.0, "min": -1.0, "max": 100.0},
            "shorts": {"type": "select", "default": "all", "options": ["all", "first"]},
            "rebalance": {"type": "select", "default": "change", "options": ["change", "bar"]},
            "fill": {"type": "select", "default": "run", "options": ["run", "close", "open"]},
            "record": {"type": "bool", "default": False},
        },
    }


def weights_of(*args):
    """The indicator: ``(closes..., names, shorts, fields)`` -> weights, one
    row per close, one column per symbol (causal: pandas rolling windows)."""
    split = next(k for k, a in enumerate(args) if not isinstance(a, np.ndarray))
    arrays, (names, shorts, fields) = args[:split], args[split:]
    closes = pd.DataFrame(dict(zip(names, arrays, strict=True)))
    params = ShortOverlay(**dict(fields), short_symbols=shorts, btc=names[0])
    return overlay_weights(closes, params).to_numpy()


def on_init(ctx):
    if len(ctx.symbols) < 2:
        raise ValueError("short_overlay: needs BTC (the first symbol) and at least one symbol to short")
    p = ctx.params
    names = tuple(ctx.symbols)
    ctx.state["names"] = names
    ctx.state["shorts"] = names[1:2] if p["shorts"] == "first" else names[1:]
    keys = ("family", "bar", "btc_trend", "btc_lookback", "symbol_trend", "vol_lookback")
    keys += ("btc_max_momentum", "btc_min_drop", "min_btc_vol", "symbol_max_momentum")
    ctx.state["fields"] = tuple((k, p[k]) for k in keys)
    ShortOverlay(**dict(ctx.state["fields"]), short_symbols=ctx.state["shorts"], btc=names[0])  # checks them
    ctx.state["seen"] = 0  # closes of `bar` acted on
    ctx.state["target"] = None  # the weights last traded to
    ctx.state["resampled"] = None  # whether `bar` is built from the run's bars
    ctx.ind.register(INDICATOR, weights_of)


def closes(ctx):
    """Each symbol's closes of ``bar`` seen so far (the run's own bars when
    they are ``bar`` long, else built from them)."""
    bar = ctx.params["bar"]
    if ctx.state["resampled"] is None:
        try:
            ctx.data[ctx.symbol].resample(bar)
            ctx.state["resampled"] = True
        except ValueError as exc:
            if "must be a multiple" not in str(exc):
                raise  # e.g. a live session: no coarser bars from a growing series
            ctx.state["resampled"] = False  # the run's bars are not finer than `bar`: used as they are
    if ctx.state["resampled"]:
        return [ctx.data[s].resample(bar).close for s in ctx.state["names"]]
    times = ctx.time
    step = pd.Timedelta(bar).value
    if len(times) >= 2 and times[-1] - times[-2] != step and ctx.state["seen"] <= 1:
        raise ValueError(f"short_overlay: bar={bar} needs bars of {bar} or finer bars that divide it")
    return [ctx.data[s].close for s in ctx.state["names"]]


def on_bar(ctx, i):
    state = ctx.state
    series = closes(ctx)
    n = len(series[0])
    if n == state["seen"] or n == 0:
        return  # no new close of `bar`
    state["seen"] = n
    weights = ctx.ind.compute(INDICATOR, *series, state["names"], state["shorts"], state["fields"])[-1]
    target = {s: float(w) for s, w in zip(state["names"], weights, strict=True)}
    if ctx.params["record"]:
        for s, w in target.items():
            ctx.record(f"weight_{s}", w)
    if ctx.params["rebalance"] == "change" and target == state["target"]:
        return
    state["target"] = target
    trade_to(ctx, target)


def trade_to(ctx, target):
    """Orders for ``equity x weight / (price x point value)`` of each symbol, sells first."""
    equity = ctx.portfolio.equity
    if not equity > 0:
        return
    fill = ctx.params["fill"]
    plan = []
    for symbol, weight in target.items():
        price = ctx.last_price(symbol)
        if not price > 0:
            continue
        held = ctx.position_of(symbol).size
        delta = equity * weight / (price * ctx.point_value(symbol)) - held
        if weight == 0.0:
            delta = -held  # flat exactly
        if delta:
            plan.append((delta > 0, symbol, delta))
    for _, symbol, delta in sorted(plan):
        ctx.order("buy" if delta > 0 else "sell", abs(delta), symbol=symbol, fill=None if fill == "run" else fill)
