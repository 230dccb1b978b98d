"""The test runner's shares (tests/conftest.py): every test in exactly one
share, the same in every process, balanced by recorded seconds."""

from __future__ import annotations

from tests.conftest import shares


def test_the_longest_tests_are_spread_and_the_rest_fill_in() -> None:
    ids = ["a", "b", "c", "d", "e", "f"]
    weights = {"a": 100.0, "b": 90.0, "c": 20.0, "d": 20.0, "e": 20.0, "f": 30.0}
    share = shares(ids, weights, 2)
    loads = [sum(weights[i] for i, k in zip(ids, share, strict=True) if k == m) for m in range(2)]
    # a to 0, b to 1, then f, c, d, e each to the lighter share (a tie to share 0)
    assert share == [0, 1, 0, 0, 1, 1] and loads == [140.0, 140.0]
    assert shares(ids, weights, 2) == share  # the same in every process


def test_unrecorded_tests_weigh_the_median_and_every_test_has_one_share() -> None:
    ids = [f"t{j}" for j in range(50)]
    weights = {"t0": 60.0, "t1": 1.0, "t2": 2.0, "t3": 3.0}
    share = shares(ids, weights, 3)
    assert len(share) == 50 and set(share) == {0, 1, 2}
    assert share.count(share[0]) < share.count((share[0] + 1) % 3)  # t0's share gets fewer tests
