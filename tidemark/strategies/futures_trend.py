"""Risk-sized futures trend across many instruments (the seed's system 003).

For every instrument of the run: long when SMA(fast) > SMA(slow), short when
below (flat instead of short with ``long_only``). On each regime change the
position is re-sized from risk:

    stop distance  = stop_k * EWM volatility of returns (span vol_span) * close
    contracts      = floor(equity_base * risk_pct / (stop distance * point value))

``equity_method`` picks the base: ``closed`` (balance without open PnL),
``open`` (marked to market) or ``risk_adjusted`` (closed minus the money at
risk if every stop were hit). Each entry carries its stop as the risk price,
so the run's ``risk.max_open_risk`` acts as the portfolio heat cap. Point
values and per-contract commissions come from the run's ``instruments``.
"""

import math


def schema():
    return {
        "id": "futures_trend",
        "name": "Futures trend, risk sized",
        "category": "trend",
        "inputs": {
            "fast": {"type": "int", "default": 50, "min": 2, "max": 500},
            "slow": {"type": "int", "default": 200, "min": 3, "max": 2000},
            "risk_pct": {"type": "float", "default": 0.005, "min": 0.0, "max": 0.1},
            "stop_k": {"type": "float", "default": 3.0, "min": 0.1, "max": 20.0},
            "vol_span": {"type": "int", "default": 32, "min": 2, "max": 500},
            "equity_method": {"type": "select", "default": "closed", "options": ["closed", "open", "risk_adjusted"]},
            "long_only": {"type": "bool", "default": False},
        },
    }


def on_init(ctx):
    ctx.state["stops"] = {}
    ctx.state["regime"] = {}


def equity_base(ctx):
    method = ctx.params["equity_method"]
    if method == "open":
        return ctx.portfolio.equity
    closed = ctx.portfolio.closed_equity
    if method == "closed":
        return closed
    at_risk = 0.0
    for symbol, stop in ctx.state["stops"].items():
        pos = ctx.data[symbol].position
        if pos.size:
            at_risk += max(0.0, (ctx.data[symbol].close[-1] - stop) * pos.size) * ctx.point_value(symbol)
    return closed - at_risk


def on_bar(ctx, i):
    p = ctx.params
    if i < p["slow"]:
        return
    for symbol in ctx.symbols:
        data = ctx.data[symbol]
        close = data.close
        price = close[i]
        if not math.isfinite(price):
            continue
        fast = ctx.ind.sma(close, p["fast"])[i]
        slow = ctx.ind.sma(close, p["slow"])[i]
        regime = 1 if fast > slow else -1
        if p["long_only"] and regime < 0:
            regime = 0
        if ctx.state["regime"].get(symbol) == regime:
            continue
        ctx.state["regime"][symbol] = regime
        held = data.position.size
        if held:
            ctx.flatten(symbol)
            ctx.state["stops"].pop(symbol, None)
        if regime == 0:
            continue
        vol = ctx.ind.ewm_vol(close, p["vol_span"])[i]
        if not (math.isfinite(vol) and vol > 0):
            continue
        distance = p["stop_k"] * vol * price
        contracts = math.floor(equity_base(ctx) * p["risk_pct"] / (distance * ctx.point_value(symbol)))
        if contracts < 1:
            continue
        stop = price - regime * distance
        ctx.state["stops"][symbol] = stop
        ctx.order("buy" if regime > 0 else "sell", contracts, symbol=symbol, risk_price=stop)
