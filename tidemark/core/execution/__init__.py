"""Execution: simulated venues (on bars and on order books), order state,
fee and slippage models, execution algorithms, and the order book."""
