"""One import name: the wheel installs ``tidemark`` and nothing else at the
top level, and the documented public names exist."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import tidemark

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_one_top_level_name(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_wheel({str(tmp_path)!r})"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("tidemark-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert top == {"tidemark", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    for component in ("core", "core/accounts", "core/execution", "core/strategy", "journal", "adapters", "strategies"):
        assert f"tidemark/{component}/__init__.py" in names
    assert "tidemark/py.typed" in names
    assert "tidemark/adapters/sample_data/SYNTH_BTC-1h.csv" in names
    for name in ("BTCUSDT-15m.csv", "BTCUSD_250328-15m.csv", "BTCUSD_250627-15m.csv", "run.json"):
        assert f"tidemark/adapters/sample_data/cash_carry/{name}" in names  # cash_carry's bundled sample
    assert not [n for n in names if "/tests/" in n or n.startswith("scripts/")]


def test_public_names_exist_and_are_listed() -> None:
    for name in tidemark.__all__:
        assert getattr(tidemark, name) is not None, name
    assert set(tidemark.__all__) <= set(dir(tidemark))
    assert tidemark.open_journal.__name__ == "JournalReader"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tidemark.nope  # noqa: B018


def test_import_is_light_and_the_module_runs_the_cli() -> None:
    code = "import sys, tidemark; print('pandas' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "False"]
    cli = subprocess.run(
        [sys.executable, "-m", "tidemark", "--help"], capture_output=True, text=True, check=True, timeout=60
    )
    assert "backtest" in cli.stdout
