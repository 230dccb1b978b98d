"""Cash-and-carry with inverse quarterlies (the seed's system 002).

Symbols: the spot first, then the dated inverse futures (any order; they are
used by expiry). On the first bar the strategy buys ``capital_pct`` of equity
in spot and sells the coin-equivalent number of contracts of the front
future, both through TWAPs of ``slots`` slots of ``slot_minutes`` minutes,
weighted by the spot's volume over the last ``slots`` bars (equal weights
when there is no history) and capped at ``participation`` of each bar's
volume. ``roll_days`` before the front contract expires it rolls the hedge
into the next one with a paired TWAP that keeps the coin exposure. Once a day
the hedge is re-sized to the spot position when it is off by more than
``rehedge_pct``. The carry is what the basis converges to by expiry, minus
fees; the journal shows every leg.
"""

DAY = 86_400_000_000_000
MINUTE = 60_000_000_000


def schema():
    return {
        "id": "cash_carry",
        "name": "Cash and carry (spot long, inverse quarterly short)",
        "category": "basis",
        "inputs": {
            "capital_pct": {"type": "float", "default": 0.5, "min": 0.0, "max": 1.0},
            "slots": {"type": "int", "default": 96, "min": 1, "max": 10_000},
            "slot_minutes": {"type": "int", "default": 15, "min": 1, "max": 1_440},
            "participation": {"type": "float", "default": 0.1, "min": 0.0, "max": 1.0},
            "roll_days": {"type": "float", "default": 3.0, "min": 0.0, "max": 60.0},
            "rehedge_pct": {"type": "float", "default": 0.02, "min": 0.0, "max": 1.0},
        },
    }


def on_init(ctx):
    if len(ctx.symbols) < 2:
        raise ValueError("cash_carry needs the spot symbol and at least one dated future")
    futures = sorted(ctx.symbols[1:], key=lambda s: ctx.instrument(s).expiry or 2**62)
    for symbol in futures:
        inst = ctx.instrument(symbol)
        if not (inst.inverse and inst.expiry):
            raise ValueError(f"cash_carry: {symbol} must be an inverse future with an expiry (set it in 'instruments')")
    ctx.state.update(futures=futures, front=0, started=False, rolled=set(), day=None, busy_until=0)


def schedule(ctx):
    p = ctx.params
    volume = ctx.data[ctx.symbols[0]].volume
    past = [float(v) for v in volume[-p["slots"] :]] if len(volume) >= p["slots"] else []
    weights = past if past and sum(past) > 0 else []
    return {
        "slots": p["slots"],
        "interval": p["slot_minutes"] * MINUTE,
        "weights": weights,
        "participation": p["participation"],
    }


def on_bar(ctx, i):
    p = ctx.params
    spot = ctx.symbols[0]
    futures = ctx.state["futures"]
    front = futures[ctx.state["front"]]
    if not ctx.state["started"]:
        ctx.state["started"] = True
        price = ctx.data[spot].close[i]
        coin = ctx.portfolio.equity * p["capital_pct"] / price
        contracts = ctx.contracts_for(front, coin)
        ctx.twap("buy", coin, symbol=spot, tag="entry", **schedule(ctx))
        ctx.twap("sell", abs(contracts), symbol=front, tag="entry", **schedule(ctx))
        ctx.state["busy_until"] = ctx.now + (p["slots"] + 1) * p["slot_minutes"] * MINUTE
        return
    expiry = ctx.instrument(front).expiry
    nxt = ctx.state["front"] + 1
    if nxt < len(futures) and ctx.now >= expiry - p["roll_days"] * DAY and front not in ctx.state["rolled"]:
        ctx.state["rolled"].add(front)
        ctx.state["front"] = nxt
        plan = schedule(ctx)
        plan.pop("weights")
        ctx.roll(front, futures[nxt], **plan)
        ctx.state["busy_until"] = ctx.now + (p["slots"] + 1) * p["slot_minutes"] * MINUTE
        return
    if ctx.now < ctx.state["busy_until"]:
        return  # an entry or roll schedule is still working
    day = ctx.now // DAY
    if day != ctx.state["day"]:
        ctx.state["day"] = day
        held = ctx.data[spot].position.size
        if held > 0 and ctx.data[front].position.size:
            ctx.rehedge(-held, front, threshold=p["rehedge_pct"])
