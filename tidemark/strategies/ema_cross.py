"""EMA crossover (the seed's example), long-only by default.

Buys ``size`` when the fast EMA crosses above the slow EMA and goes flat when
it crosses below; with ``long_only=false`` it reverses between +size and
-size instead. The first cross is tested at bar ``slow`` (comparing bars
``slow-1`` and ``slow``), the convention used to align with peer engines.
"""


def schema():
    return {
        "id": "ema_cross",
        "name": "EMA Cross",
        "category": "trend",
        "version": "1",
        "inputs": {
            "fast": {"type": "int", "default": 12, "min": 1, "max": 500},
            "slow": {"type": "int", "default": 26, "min": 2, "max": 2000},
            "size": {"type": "float", "default": 1.0, "min": 0.0, "max": 1e12},
            "long_only": {"type": "bool", "default": True},
        },
    }


def on_init(ctx):
    if ctx.params["fast"] >= ctx.params["slow"]:
        raise ValueError("ema_cross: fast must be shorter than slow")


def wake(ctx):
    """The steps where on_bar can act: a cross at or after bar ``slow``.

    Computed once over the series (and checked for lookahead by the runtime);
    on_bar is not called elsewhere. ``tidemark backtest --every-bar`` runs it
    at every step instead, which must give the same journal outputs.
    """
    params = ctx.params
    fast = ctx.ind.ema(ctx.close, params["fast"])
    slow = ctx.ind.ema(ctx.close, params["slow"])
    mask = ctx.ind.crossover(fast, slow) | ctx.ind.crossunder(fast, slow)
    mask[: params["slow"]] = False
    return mask


def on_bar(ctx, i):
    params = ctx.params
    if i < params["slow"]:
        return
    close = ctx.close
    fast = ctx.ind.ema(close, params["fast"])
    slow = ctx.ind.ema(close, params["slow"])
    prev_fast, prev_slow, now_fast, now_slow = fast[i - 1], slow[i - 1], fast[i], slow[i]
    if now_fast > now_slow and prev_fast <= prev_slow:
        position = ctx.position.size
        target = params["size"]
        if position < target:
            ctx.buy(target - position)
    elif now_fast < now_slow and prev_fast >= prev_slow:
        position = ctx.position.size
        target = 0.0 if params["long_only"] else -params["size"]
        if position > target:
            ctx.sell(position - target)
