"""Research at scale: parameter sweeps, cross-run analytics, Monte Carlo.

Everything here works on runs (:class:`tidemark.Result` or their journals):
a sweep runs many journaled backtests and ranks them; the analytics and
Monte Carlo read finished runs' equity curves and trades.
"""
