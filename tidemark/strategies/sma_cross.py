"""SMA crossover with an optional ATR bracket.

Long when the fast SMA crosses above the slow SMA, flat (or short with
``long_only=false``) when it crosses below. With ``stop_atr > 0`` each entry
carries a stop-loss ``stop_atr`` ATRs away and a take-profit ``target_atr``
ATRs away (one cancels the other). Size is ``risk_pct`` of equity at risk over
the stop distance when a stop is set, else ``size`` units.
"""

import math


def schema():
    return {
        "id": "sma_cross",
        "name": "SMA Cross",
        "category": "trend",
        "inputs": {
            "fast": {"type": "int", "default": 10, "min": 1, "max": 500},
            "slow": {"type": "int", "default": 30, "min": 2, "max": 2000},
            "size": {"type": "float", "default": 1.0, "min": 0.0, "max": 1e12},
            "long_only": {"type": "bool", "default": True},
            "stop_atr": {"type": "float", "default": 0.0, "min": 0.0, "max": 50.0},
            "target_atr": {"type": "float", "default": 0.0, "min": 0.0, "max": 100.0},
            "risk_pct": {"type": "float", "default": 0.01, "min": 0.0, "max": 1.0},
        },
    }


def wake(ctx):
    """The steps where on_bar can act: a cross at or after bar ``slow``
    (on_bar is not called elsewhere; see ``ema_cross.wake``)."""
    p = ctx.params
    fast = ctx.ind.sma(ctx.close, p["fast"])
    slow = ctx.ind.sma(ctx.close, p["slow"])
    mask = ctx.ind.crossover(fast, slow) | ctx.ind.crossunder(fast, slow)
    mask[: p["slow"]] = False
    return mask


def on_bar(ctx, i):
    p = ctx.params
    if i < p["slow"]:
        return
    fast = ctx.ind.sma(ctx.close, p["fast"])
    slow = ctx.ind.sma(ctx.close, p["slow"])
    up = fast[i] > slow[i] and fast[i - 1] <= slow[i - 1]
    down = fast[i] < slow[i] and fast[i - 1] >= slow[i - 1]
    if not (up or down):
        return
    position = ctx.position.size
    if down and position > 0:
        ctx.flatten()
    if up and position < 0:
        ctx.flatten()
    if down and p["long_only"]:
        return
    if (up and position > 0) or (down and position < 0):
        return
    price = float(ctx.close[i])
    side = "buy" if up else "sell"
    if p["stop_atr"] > 0:
        atr = float(ctx.ind.atr(ctx.high, ctx.low, ctx.close, 14)[i])
        if not math.isfinite(atr) or atr <= 0:
            return
        distance = p["stop_atr"] * atr
        size = ctx.size.risk(p["risk_pct"], distance)
        direction = 1 if up else -1
        stop = price - direction * distance
        target = price + direction * p["target_atr"] * atr if p["target_atr"] > 0 else None
        if target is None:
            ctx.order(side, size, stop_loss=stop, risk_price=stop)
        else:
            ctx.bracket(side, size, stop_loss=stop, take_profit=target, risk_price=stop)
    else:
        ctx.order(side, p["size"])
