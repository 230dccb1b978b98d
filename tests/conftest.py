"""Shared fixtures. Real market data is read from ../shared/data when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests check behaviour, never speed: no per-example deadline (a
# busy CI machine stalls single examples by hundreds of milliseconds).
settings.register_profile("tidemark", deadline=None)
settings.load_profile("tidemark")

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--shard",
        default="",
        metavar="K/N",
        help="run only share K (0-based) of N: the collected tests dealt out in turn (scripts/run_tests.py)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--shard K/N`` keeps every N-th test from the K-th: the shares of a
    suite run side by side in separate processes, each single-threaded (so
    the journal's helper processes fork as they do in a normal run)."""
    spec = str(config.getoption("--shard") or "")
    if not spec:
        return
    k_text, _, n_text = spec.partition("/")
    k, n = int(k_text), int(n_text)
    if not 0 <= k < n:
        raise pytest.UsageError(f"--shard {spec}: expected K/N with 0 <= K < N")
    kept = items[k::n]
    config.hook.pytest_deselected(items=[item for j, item in enumerate(items) if j % n != k])
    items[:] = kept


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
