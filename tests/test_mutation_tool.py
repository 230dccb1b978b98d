"""scripts/mutation.py: the mutator finds the classic mutants in a toy module and each changes behaviour."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent

TOY = '''"""Toy module."""

from __future__ import annotations

LIMIT: int = 3


def clamp(x: int, flag: bool = True) -> int:
    """Docstrings are not mutated."""
    if x > LIMIT and flag:
        return LIMIT
    if not flag:
        return -x
    return x + 1  # pragma: no mutate
'''


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "scripts" / "mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_tool"] = module
    spec.loader.exec_module(module)
    return module


def _load(source: str) -> ModuleType:
    module = ModuleType("toy")
    exec(compile(source, "toy", "exec"), module.__dict__)
    return module


def test_enumerates_the_classic_operators_and_skips_annotations_docstrings_pragmas() -> None:
    tool = _tool()
    mutants = tool.enumerate_mutants(TOY)
    found = sorted((m.line, m.operator, m.detail) for m in mutants)
    assert found == [
        (5, "num", "3 -> 4"),
        (8, "const", "True -> False"),
        (10, "bool", "and -> or"),
        (10, "cmp", "> -> <"),
        (10, "cmp", "> -> >="),
        (12, "not", "not x -> x"),
        (13, "neg", "-x -> x"),
    ]


def test_every_toy_mutant_is_killed_by_a_pinning_check() -> None:
    tool = _tool()

    def behaviour(module: ModuleType) -> tuple[int, ...]:
        return (module.clamp(3), module.clamp(4), module.clamp(9, False), module.clamp(5, False), module.clamp(1))

    original = behaviour(_load(TOY))
    assert original == (4, 3, -9, -5, 2)
    for m in tool.enumerate_mutants(TOY):
        assert behaviour(_load(tool.mutate(TOY, m.index))) != original, m
