"""Parameter spaces of a sweep: what each parameter may take, and the points.

A dimension is written ``name=SPEC`` (the CLI's ``--grid``/``--space``):

- ``fast=5:50:5``: 5, 10, ..., 50 (start, stop, step; the stop is included
  when the steps land on it);
- ``fast=5:50``: the whole range; a grid steps it by 1, a random or Optuna
  search draws from it (integers if both ends are integers);
- ``fast=5,8,13`` or ``mode=fast,slow`` or ``long_only=true,false``: a list.

Values are read as in ``--param`` (bool, int, float, else text); the
strategy's own schema then validates and coerces each point's parameters.
Points are plain dicts with the dimensions in the order given; a grid's
points come in ``itertools.product`` order, a random search's from
``numpy.random.default_rng(seed)``: the same spec always gives the same
points in the same order.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tidemark.core.strategy.params import parse_cli_value

MAX_GRID = 1_000_000


class SpaceError(ValueError):
    """A dimension that cannot be read, or a space too large to run."""


@dataclass(frozen=True)
class Dimension:
    """One parameter's values: ``choices`` (a list or a stepped range) or a
    continuous ``low``..``high`` range (``integer``: whole numbers)."""

    name: str
    text: str
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    integer: bool = False

    @property
    def is_range(self) -> bool:
        return not self.choices

    def grid(self) -> tuple[Any, ...]:
        """The values a grid takes (an unstepped range steps by 1)."""
        if self.choices:
            return self.choices
        if not self.integer:
            raise SpaceError(f"{self.name}={self.text}: a grid over a float range needs a step (low:high:step)")
        return tuple(range(int(self.low), int(self.high) + 1))

    def draw(self, rng: np.random.Generator) -> Any:
        """One random value: a choice, an integer in [low, high] or a float
        in [low, high)."""
        if self.choices:
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.integer:
            return int(rng.integers(int(self.low), int(self.high) + 1))
        return float(rng.uniform(self.low, self.high))


def parse_dimension(text: str) -> Dimension:
    """``name=SPEC`` (see the module docstring) as a :class:`Dimension`."""
    name, sep, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name or not spec:
        raise SpaceError(f"{text!r}: expected NAME=SPEC, e.g. fast=5:50:5 or fast=5,10,20")
    if ":" in spec:
        parts = [p.strip() for p in spec.split(":")]
        if len(parts) not in (2, 3) or not all(parts):
            raise SpaceError(f"{name}={spec}: a range is low:high or low:high:step")
        numbers = [parse_cli_value(p) for p in parts]
        if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
            raise SpaceError(f"{name}={spec}: range bounds must be numbers")
        if not all(math.isfinite(n) for n in numbers):
            raise SpaceError(f"{name}={spec}: range bounds must be finite")
        low, high = numbers[0], numbers[1]
        if high < low:
            raise SpaceError(f"{name}={spec}: the range ends ({high}) before it starts ({low})")
        integer = all(isinstance(n, int) for n in numbers)
        if len(numbers) == 2:
            return Dimension(name, spec, low=float(low), high=float(high), integer=integer)
        step = numbers[2]
        if step <= 0:
            raise SpaceError(f"{name}={spec}: the step must be positive")
        return Dimension(name, spec, choices=_stepped(low, high, step, integer), integer=integer)
    values = tuple(parse_cli_value(v.strip()) for v in spec.split(","))
    if any(v == "" for v in values):
        raise SpaceError(f"{name}={spec}: an empty value in the list")
    if len(set(map(repr, values))) != len(values):
        raise SpaceError(f"{name}={spec}: a value is listed twice")
    return Dimension(name, spec, choices=values)


def _stepped(low: float, high: float, step: float, integer: bool) -> tuple[Any, ...]:
    count = math.floor((high - low) / step + 1e-9) + 1
    if count > MAX_GRID:
        raise SpaceError(f"{low}:{high}:{step}: {count:,} values; more than {MAX_GRID:,}")
    if integer:
        return tuple(int(low) + k * int(step) for k in range(count))
    # Decimal steps without binary noise: 0.1:0.3:0.1 gives 0.1, 0.2, 0.3.
    return tuple(float(round(low + k * step, 12)) for k in range(count))


def parse_space(texts: list[str]) -> list[Dimension]:
    """Several dimensions; a name given twice is an error."""
    dims = [parse_dimension(t) for t in texts]
    seen: dict[str, int] = {}
    for d in dims:
        seen[d.name] = seen.get(d.name, 0) + 1
    twice = [n for n, c in seen.items() if c > 1]
    if twice:
        raise SpaceError(f"parameter {twice[0]!r} is given twice")
    return dims


def grid_points(dims: list[Dimension]) -> list[dict[str, Any]]:
    """Every combination, the last dimension varying fastest."""
    axes = [d.grid() for d in dims]
    total = math.prod(len(a) for a in axes)
    if total > MAX_GRID:
        raise SpaceError(f"the grid has {total:,} points; more than {MAX_GRID:,} (narrow it or use --random)")
    names = [d.name for d in dims]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]


def random_points(dims: list[Dimension], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` points drawn independently with ``default_rng(seed)``."""
    if n < 1:
        raise SpaceError(f"a random search needs at least 1 point, not {n}")
    rng = np.random.default_rng(seed)
    return [{d.name: d.draw(rng) for d in dims} for _ in range(n)]


def describe(dims: list[Dimension]) -> list[dict[str, Any]]:
    """The dimensions by what they hold (however they were written:
    ``5:50:5`` and ``5,10,...,50`` are the same grid), for the manifest."""
    out: list[dict[str, Any]] = []
    for d in dims:
        if d.choices:
            out.append({"name": d.name, "values": list(d.choices)})
        else:
            out.append({"name": d.name, "low": d.low, "high": d.high, "integer": d.integer})
    return out
