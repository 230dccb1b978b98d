"""Parameter spaces: how NAME=SPEC texts become values and points."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidemark.adapters.research.space import (
    SpaceError,
    grid_points,
    parse_dimension,
    parse_space,
    random_points,
)


def test_a_stepped_range_includes_its_stop_when_a_step_lands_on_it() -> None:
    assert parse_dimension("fast=5:50:5").grid() == (5, 10, 15, 20, 25, 30, 35, 40, 45, 50)
    assert parse_dimension("fast=5:52:5").grid() == (5, 10, 15, 20, 25, 30, 35, 40, 45, 50)
    assert parse_dimension("x=0.1:0.3:0.1").grid() == (0.1, 0.2, 0.3)  # no binary noise (0.30000000000000004)


def test_lists_and_unstepped_ranges() -> None:
    assert parse_dimension("fast=5,8,13").grid() == (5, 8, 13)
    assert parse_dimension("long_only=true,false").grid() == (True, False)
    assert parse_dimension("mode=fast,slow").grid() == ("fast", "slow")
    assert parse_dimension("n=3:6").grid() == (3, 4, 5, 6)
    with pytest.raises(SpaceError, match="needs a step"):
        parse_dimension("x=0.5:2.5").grid()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fast", "expected NAME=SPEC"),
        ("fast=", "expected NAME=SPEC"),
        ("fast=50:5", "ends .* before it starts"),
        ("fast=5:50:0", "step must be positive"),
        ("fast=a:b", "must be numbers"),
        ("fast=5,,6", "empty value"),
        ("fast=5,5", "listed twice"),
        ("fast=1:2:3:4", "low:high or low:high:step"),
    ],
)
def test_a_bad_dimension_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        parse_dimension(text)


def test_a_parameter_given_twice_is_refused() -> None:
    with pytest.raises(SpaceError, match="'fast' is given twice"):
        parse_space(["fast=1,2", "fast=3:4"])


def test_a_grid_is_the_product_with_the_last_dimension_fastest() -> None:
    dims = parse_space(["a=1,2", "b=x,y,z"])
    assert grid_points(dims) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 1, "b": "z"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
        {"a": 2, "b": "z"},
    ]


def test_a_grid_too_large_is_refused_before_anything_runs() -> None:
    with pytest.raises(SpaceError, match="more than"):
        grid_points(parse_space(["a=1:1000", "b=1:1000", "c=1:10"]))


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30))
def test_random_points_are_a_function_of_the_seed_and_stay_in_range(seed: int, n: int) -> None:
    dims = parse_space(["fast=3:20", "ratio=0.5:2.0", "mode=a,b,c"])
    points = random_points(dims, n, seed)
    assert points == random_points(dims, n, seed)
    assert len(points) == n
    for p in points:
        assert isinstance(p["fast"], int) and 3 <= p["fast"] <= 20
        assert isinstance(p["ratio"], float) and 0.5 <= p["ratio"] < 2.0
        assert p["mode"] in ("a", "b", "c")


def test_random_points_differ_across_seeds() -> None:
    dims = parse_space(["fast=3:200", "ratio=0.5:2.0"])
    assert random_points(dims, 10, 1) != random_points(dims, 10, 2)
