"""Shared fixtures. Real market data is read from ../shared/data when present."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests check behaviour, never speed: no per-example deadline (a
# busy CI machine stalls single examples by hundreds of milliseconds).
settings.register_profile("tidemark", deadline=None)
settings.load_profile("tidemark")

ROOT = Path(__file__).resolve().parent.parent


DURATIONS = Path(__file__).with_name("durations.json")
"""Seconds each test took in a recorded whole run (``scripts/run_tests.py
--record-durations``): the weights that balance the shares."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--shard",
        default="",
        metavar="K/N",
        help="run only share K (0-based) of N, the shares balanced by tests/durations.json (scripts/run_tests.py)",
    )
    parser.addoption(
        "--record-durations",
        default="",
        metavar="FILE",
        help="write each test's seconds (setup + call + teardown) to FILE as JSON",
    )


def shares(ids: list[str], weights: dict[str, float], n: int) -> list[int]:
    """The share of each test: longest first, each to the share with the
    least recorded time so far (ties to the lowest share); a test with no
    record weighs the median of those recorded. Deterministic: the same ids
    and weights give the same shares in every process."""
    known = sorted(weights.values())
    default = known[len(known) // 2] if known else 1.0
    order = sorted(range(len(ids)), key=lambda j: (-weights.get(ids[j], default), j))
    loads = [0.0] * n
    share = [0] * len(ids)
    for j in order:
        k = min(range(n), key=lambda m: (loads[m], m))
        share[j] = k
        loads[k] += weights.get(ids[j], default)
    return share


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--shard K/N`` keeps the K-th of N shares of the collected tests,
    balanced by their recorded durations and run in collection order: the
    shares of a suite run side by side in separate processes, each
    single-threaded (so the journal's helper processes fork as they do in a
    normal run)."""
    spec = str(config.getoption("--shard") or "")
    if not spec:
        return
    k_text, _, n_text = spec.partition("/")
    k, n = int(k_text), int(n_text)
    if not 0 <= k < n:
        raise pytest.UsageError(f"--shard {spec}: expected K/N with 0 <= K < N")
    weights = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    share = shares([item.nodeid for item in items], weights, n)
    config.hook.pytest_deselected(items=[item for j, item in enumerate(items) if share[j] != k])
    items[:] = [item for j, item in enumerate(items) if share[j] == k]


_SPENT: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _SPENT[report.nodeid] = _SPENT.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = str(session.config.getoption("--record-durations") or "")
    if target:
        Path(target).write_text(json.dumps({k: round(v, 2) for k, v in sorted(_SPENT.items())}, indent=0))


SHARED_DATA = Path(os.environ.get("TIDEMARK_SHARED_DATA", ROOT.parent / "shared" / "data"))
SHARED_SEEDS = Path(os.environ.get("TIDEMARK_SHARED_SEEDS", ROOT.parent / "shared" / "seeds"))


@pytest.fixture(scope="session", autouse=True)
def _private_data_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Parsed-CSV cache entries of this test session go to a temporary folder
    (inherited by the CLI subprocesses), never the user's ~/.cache."""
    os.environ.setdefault("TIDEMARK_DATA_CACHE", str(tmp_path_factory.mktemp("data-cache")))


@pytest.fixture
def shared_data() -> Path:
    """The shared real-data folder; skips the test with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared market data not found at {SHARED_DATA} (set TIDEMARK_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_seeds() -> Path:
    """The seed documents (../shared/seeds); skips the test with a reason when absent."""
    if not (SHARED_SEEDS / "harness").is_dir():
        pytest.skip(f"seed documents not found at {SHARED_SEEDS} (set TIDEMARK_SHARED_SEEDS)")
    return SHARED_SEEDS


@pytest.fixture
def sample_csv() -> Path:
    return ROOT / "tidemark" / "adapters" / "sample_data" / "SYNTH_BTC-1h.csv"
