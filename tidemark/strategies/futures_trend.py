"""Risk-sized futures trend across many instruments (the seed's system 003).

For every instrument of the run: long when SMA(fast) > SMA(slow), short when
below (flat instead of short with ``long_only``). A position is sized from
risk:

    stop distance  = stop_k * EWM volatility of returns (span vol_span) * close
    contracts      = floor(equity_base * risk_pct / (stop distance * point value))

and below ``min_contracts`` it is not taken. Point values and per-contract
commissions come from the run's ``instruments`` (or ``commission_per_contract``);
a micro or mini contract traded on a full-size contract's prices (seed 003's
micro/mini mapping) is the full-size symbol's data with the micro's
``multiplier``.

Options (``--param name=value`` or ``params`` in the run config); defaults
first, seed 003's value in brackets where it differs:

``fast`` 50, ``slow`` 200 [100]
    The moving averages of the signal.
``signal`` ``regime`` [``sign``]
    ``regime``: from bar ``slow`` on, long when fast > slow, else short.
    ``sign``: the sign of fast - slow from the first bar both averages exist,
    flat on a tie.
``resize`` ``regime`` [``daily``]
    ``regime``: trade only when the signal changes (flatten, then enter
    sized from risk). ``daily``: every bar the position is set to its
    target, the risk size recomputed from that bar's equity base and
    volatility (flat when the signal is 0, the volatility is missing or the
    size is below ``min_contracts``); each change is one order for the
    difference, so a reversal is one order through zero. An instrument
    without a bar at a step is left as it is.
``risk_pct`` 0.005, ``stop_k`` 3.0, ``vol_span`` 32, ``min_contracts`` 1
    Risk per position as a fraction of the equity base, the stop distance in
    volatilities, the EWM span of the volatility, the smallest size taken.
``equity_method`` ``closed``
    The equity base: ``closed`` (closed equity, see ``closed_equity``),
    ``open`` (marked to market) or ``risk_adjusted`` (closed minus the open
    risk of every position, at least 0).
``closed_equity`` ``balance`` [``marked_on_change``]
    ``balance``: the account's balance (initial + realized - fees).
    ``marked_on_change``: seed 003's book-keeping. Each bar every position is
    re-marked to the close (its entry becomes the close); a bar's PnL on an
    instrument reaches closed equity only when that instrument's position
    changes at that bar (``size x point value x (close - entry)``), and
    commissions are deducted when paid.
``open_risk`` ``mark`` [``entry``]
    The money at risk of a position (for ``risk_adjusted`` and the heat cap):
    ``mark``: ``max(0, (close - stop) x size) x point value`` from the stop set
    at entry. ``entry``: ``stop distance x |size| x point value`` with the stop
    distance of the bar the position was last sized at (``|entry - stop| x
    size``; with ``resize=daily`` that is the previous bar).
``heat_cap`` 0 (off) [0.10]
    Portfolio heat cap as seed 003 applies it: a position (new or resized)
    whose risk plus the open risk of the *other* instruments' positions
    (held before this bar's orders) exceeds ``heat_cap x closed equity`` is
    not held: the target becomes flat. Every refusal counts as
    ``reject/heat_cap`` (``Result.counters``). This is a check on the target
    position, so it can close a position; the engine's ``risk.max_open_risk``
    (checked per order, on equity) stays available as well.
``fill`` ``run`` [``close``]
    When orders fill: ``run`` (the run's ``fill_model``), ``close`` (this
    bar's close, seed 003) or ``open`` (the next open).
``long_only`` false
    Flat instead of short.

With ``record`` the strategy journals, each bar, its ``equity_base``,
``closed_equity`` (as ``closed_equity`` defines it), ``open_risk`` and
``heat`` (open risk / closed equity) after the bar's decisions: seed 003's
equity-table columns (``Result.records``).

Seed 003 as a run config (tests/strategies/test_futures_trend_seed.py
reproduces the seed's own ``run_backtest`` with it)::

    {"initial_cash": 400000, "commission_per_contract": 2.5,
     "account": "margin", "leverage": 10,
     "instruments": {"BTC": {"kind": "future", "multiplier": 0.1}, ...},
     "strategies": [{"strategy": "futures_trend", "params": {
        "slow": 100, "signal": "sign", "resize": "daily", "fill": "close",
        "closed_equity": "marked_on_change", "open_risk": "entry",
        "heat_cap": 0.10}}]}
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
            "signal": {"type": "select", "default": "regime", "options": ["regime", "sign"]},
            "resize": {"type": "select", "default": "regime", "options": ["regime", "daily"]},
            "min_contracts": {"type": "int", "default": 1, "min": 1, "max": 1_000_000},
            "closed_equity": {"type": "select", "default": "balance", "options": ["balance", "marked_on_change"]},
            "open_risk": {"type": "select", "default": "mark", "options": ["mark", "entry"]},
            "heat_cap": {"type": "float", "default": 0.0, "min": 0.0, "max": 100.0},
            "fill": {"type": "select", "default": "run", "options": ["run", "close", "open"]},
            "record": {"type": "bool", "default": False},
        },
    }


def on_init(ctx):
    ctx.state["stops"] = {}  # symbol -> stop price set when the position was sized
    ctx.state["distance"] = {}  # symbol -> stop distance of that sizing
    ctx.state["entry"] = {}  # symbol -> price the position was last sized (marked) at
    ctx.state["regime"] = {}
    ctx.state["closed"] = float(ctx.portfolio.equity)  # closed equity, marked_on_change


def closed_equity(ctx):
    if ctx.params["closed_equity"] == "marked_on_change":
        return ctx.state["closed"]
    return ctx.portfolio.closed_equity


def position_risk(ctx, symbol, size):
    """Money at risk of ``size`` held in ``symbol`` (per ``open_risk``)."""
    if not size:
        return 0.0
    if ctx.params["open_risk"] == "entry":
        distance = ctx.state["distance"].get(symbol, math.nan)
        if not distance > 0:
            return 0.0
        return distance * abs(size) * ctx.point_value(symbol)
    stop = ctx.state["stops"].get(symbol)
    if stop is None:
        return 0.0
    return max(0.0, (ctx.data[symbol].close[-1] - stop) * size) * ctx.point_value(symbol)


def open_risks(ctx):
    """Open risk per symbol of the positions held now (before this bar's orders)."""
    risks = {}
    for symbol in ctx.symbols:
        size = ctx.data[symbol].position.size
        if size:
            risks[symbol] = position_risk(ctx, symbol, size)
    return risks


def equity_base(ctx, risks):
    method = ctx.params["equity_method"]
    if method == "open":
        return ctx.portfolio.equity
    closed = closed_equity(ctx)
    if method == "closed":
        return closed
    return max(0.0, closed - sum(risks.values()))


def signal_of(ctx, i, close):
    p = ctx.params
    fast = ctx.ind.sma(close, p["fast"])[i]
    slow = ctx.ind.sma(close, p["slow"])[i]
    if p["signal"] == "sign":
        s = 1 if fast > slow else (-1 if fast < slow else 0)  # NaN (warm-up) compares false: 0
    else:
        s = 1 if fast > slow else -1
    if p["long_only"] and s < 0:
        s = 0
    return s


def contracts_for(ctx, base, distance, symbol):
    """Whole contracts risking ``risk_pct`` of ``base`` over ``distance`` (0 below ``min_contracts``)."""
    p = ctx.params
    if not (base > 0 and distance > 0):
        return 0
    per_contract = distance * ctx.point_value(symbol)
    if not (per_contract > 0 and math.isfinite(per_contract)):
        return 0
    contracts = base * p["risk_pct"] / per_contract
    if not math.isfinite(contracts):
        return 0
    contracts = math.floor(contracts)
    return contracts if contracts >= p["min_contracts"] else 0


def over_heat_cap(ctx, symbol, risk, risks, closed):
    cap = ctx.params["heat_cap"]
    if not cap:
        return False
    others = sum(v for k, v in risks.items() if k != symbol)
    if others + risk <= closed * cap:
        return False
    ctx.count("reject", "heat_cap")
    return True


def send(ctx, symbol, delta, stop):
    fill = ctx.params["fill"]
    side = "buy" if delta > 0 else "sell"
    kw = {"risk_price": stop} if stop is not None else {}
    ctx.order(side, abs(delta), symbol=symbol, fill=None if fill == "run" else fill, **kw)


def on_bar(ctx, i):
    if ctx.params["resize"] == "daily":
        resize_daily(ctx, i)
    else:
        on_regime_change(ctx, i)


def resize_daily(ctx, i):
    """Every bar, each position to its risk-sized target (seed 003's loop body)."""
    p = ctx.params
    state = ctx.state
    risks = open_risks(ctx)
    closed = closed_equity(ctx)
    base = equity_base(ctx, risks)
    realized = 0.0
    commissions = 0.0
    held_risk = 0.0
    for symbol in ctx.symbols:
        close = ctx.data[symbol].close
        price = close[i]
        if not math.isfinite(price):
            continue  # no bar for this instrument at this step: left as it is
        held = ctx.data[symbol].position.size
        s = signal_of(ctx, i, close)
        vol = ctx.ind.ewm_vol(close, p["vol_span"])[i]
        target = 0
        distance = math.nan
        if s != 0 and math.isfinite(vol) and vol > 0:
            distance = p["stop_k"] * vol * price
            target = s * contracts_for(ctx, base, distance, symbol)
            if target and over_heat_cap(ctx, symbol, distance * abs(target) * ctx.point_value(symbol), risks, closed):
                target = 0
        if held and target != held:
            realized += held * ctx.point_value(symbol) * (price - state["entry"][symbol])
        delta = target - held
        stop = None
        if target:
            stop = price - s * distance
            state["entry"][symbol] = price
            state["distance"][symbol] = distance
            state["stops"][symbol] = stop
            held_risk += distance * abs(target) * ctx.point_value(symbol)
        else:
            state["entry"].pop(symbol, None)
            state["distance"].pop(symbol, None)
            state["stops"].pop(symbol, None)
        if delta:
            commissions += ctx.fee(symbol, abs(delta), price)
            send(ctx, symbol, delta, stop)
    state["closed"] += realized - commissions
    if p["record"]:
        record(ctx, base, held_risk)


def record(ctx, base, risk):
    closed = closed_equity(ctx)
    ctx.record("equity_base", base)
    ctx.record("closed_equity", closed)
    ctx.record("open_risk", risk)
    ctx.record("heat", risk / closed if closed > 0 else 0.0)


def on_regime_change(ctx, i):
    """Trade on signal changes only: flatten, then enter sized from risk."""
    p = ctx.params
    if p["signal"] == "regime" and i < p["slow"]:
        return
    risks = open_risks(ctx) if p["heat_cap"] else {}
    closed = closed_equity(ctx)
    for symbol in ctx.symbols:
        data = ctx.data[symbol]
        close = data.close
        price = close[i]
        if not math.isfinite(price):
            continue
        regime = signal_of(ctx, i, close)
        if ctx.state["regime"].get(symbol) == regime:
            continue
        ctx.state["regime"][symbol] = regime
        held = data.position.size
        if held:
            ctx.flatten(symbol, fill=None if p["fill"] == "run" else p["fill"])
            ctx.state["stops"].pop(symbol, None)
            ctx.state["distance"].pop(symbol, None)
            risks.pop(symbol, None)
        if regime == 0:
            continue
        vol = ctx.ind.ewm_vol(close, p["vol_span"])[i]
        if not (math.isfinite(vol) and vol > 0):
            continue
        distance = p["stop_k"] * vol * price
        contracts = contracts_for(ctx, equity_base(ctx, open_risks(ctx)), distance, symbol)
        if contracts < 1:
            continue
        if over_heat_cap(ctx, symbol, distance * contracts * ctx.point_value(symbol), risks, closed):
            continue
        stop = price - regime * distance
        ctx.state["stops"][symbol] = stop
        ctx.state["distance"][symbol] = distance
        send(ctx, symbol, contracts * regime, stop)
