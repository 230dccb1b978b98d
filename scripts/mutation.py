"""Mutation testing for one module against its focused tests (a developer tool, not CI).

A small self-contained AST mutator with the classic operators:

- ``cmp``: comparison flips (``<`` to ``<=``/``>``, ``==`` to ``!=``, ``is`` to ``is not``, ``in`` to ``not in``)
- ``arith``: arithmetic swaps (``+``/``-``, ``*``/``/``, ``//`` to ``/``, ``%`` to ``*``, ``**`` to ``*``), also in ``+=``
- ``neg``: unary minus removed
- ``num``: a number constant ``c`` becomes ``c + 1``
- ``not``: ``not x`` becomes ``x``
- ``bool``: ``and``/``or`` swapped
- ``const``: ``True``/``False`` swapped

Each mutant is applied alone to a private copy of the repository (``tidemark/``,
``tests/``, ``pyproject.toml``) in a temporary folder, and the focused tests run
there with ``pytest -x -q`` under a timeout; the working tree is never touched,
so other work can go on while it runs. A mutant is *killed* when the tests fail
or time out, *survived* when they pass. Annotations, docstrings and lines
marked ``# pragma: no mutate`` are not mutated.

    python scripts/mutation.py tidemark/core/metrics.py tests/core/test_metrics.py
    python scripts/mutation.py tidemark/journal/verify.py tests/journal/test_verify_bytes.py --sample 120 --seed 1

Prints killed / survived / score and each survivor as ``file:line operator | mutated line``.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CMP_SWAPS: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt, ast.GtE),
    ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
}
ARITH_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.Mult,
    ast.Pow: ast.Mult,
}
OP_TEXT = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}


@dataclass(frozen=True)
class Mutant:
    index: int  # position in the module's full list (stable for a given source)
    line: int
    operator: str
    detail: str  # e.g. "< -> <="
    segment: str = ""  # the mutated expression's source, e.g. "years > 0"


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _is_dunder_all(node: ast.AST) -> bool:
    return isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: annotations, docstrings, ``if TYPE_CHECKING`` bodies, ``__all__``."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            for sub in ast.walk(node):
                skip.add(id(sub))

    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            mark(node.returns)
            for a in [
                *node.args.args,
                *node.args.posonlyargs,
                *node.args.kwonlyargs,
                node.args.vararg,
                node.args.kwarg,
            ]:
                if a is not None:
                    mark(a.annotation)
        elif isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        elif _is_type_checking(node) or _is_dunder_all(node):
            mark(node)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                mark(body[0])
    return skip


def _sites(tree: ast.AST, lines: list[str]) -> list[tuple[ast.AST, str, str, object]]:
    """Every (node, operator, detail, replacement) in walk order."""
    skip = _skipped_nodes(tree)
    out: list[tuple[ast.AST, str, str, object]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        lineno = getattr(node, "lineno", None)
        if lineno is not None and "pragma: no mutate" in lines[lineno - 1]:
            continue
        if isinstance(node, ast.Compare):
            out.extend(
                (node, "cmp", f"{OP_TEXT[type(op)]} -> {OP_TEXT[new]}", (i, new))
                for i, op in enumerate(node.ops)
                for new in CMP_SWAPS.get(type(op), ())
            )
        elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in ARITH_SWAPS:
            new = ARITH_SWAPS[type(node.op)]
            out.append((node, "arith", f"{OP_TEXT[type(node.op)]} -> {OP_TEXT[new]}", new))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            out.append((node, "not", "not x -> x", None))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            out.append((node, "neg", "-x -> x", None))
        elif isinstance(node, ast.BoolOp):
            new_b = ast.Or if isinstance(node.op, ast.And) else ast.And
            out.append((node, "bool", f"{type(node.op).__name__.lower()} -> {new_b.__name__.lower()}", new_b))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            out.append((node, "const", f"{node.value} -> {not node.value}", not node.value))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            out.append((node, "num", f"{node.value!r} -> {node.value + 1!r}", node.value + 1))
    return out


def _segment(source: str, node: ast.AST) -> str:
    text = " ".join((ast.get_source_segment(source, node) or "").split())
    return text if len(text) <= 60 else text[:57] + "..."


def enumerate_mutants(source: str) -> list[Mutant]:
    tree = ast.parse(source)
    lines = source.splitlines()
    return [
        Mutant(i, getattr(node, "lineno", 0), op, detail, _segment(source, node))
        for i, (node, op, detail, _) in enumerate(_sites(tree, lines))
    ]


class _Swap(ast.NodeTransformer):
    def __init__(self, target: ast.AST, operator: str, replacement: object) -> None:
        self.target = target
        self.operator = operator
        self.replacement = replacement

    def visit(self, node: ast.AST) -> ast.AST:
        if node is not self.target:
            return self.generic_visit(node)
        if self.operator == "cmp":
            assert isinstance(node, ast.Compare)
            i, new = self.replacement  # type: ignore[misc]
            node.ops[i] = new()
            return node
        if self.operator == "arith":
            assert isinstance(node, ast.BinOp | ast.AugAssign)
            node.op = self.replacement()  # type: ignore[operator]
            return node
        if self.operator in ("not", "neg"):
            assert isinstance(node, ast.UnaryOp)
            return node.operand
        if self.operator == "bool":
            assert isinstance(node, ast.BoolOp)
            node.op = self.replacement()  # type: ignore[operator]
            return node
        assert isinstance(node, ast.Constant)
        node.value = self.replacement
        return node


def mutate(source: str, index: int) -> str:
    """The module's source with mutant ``index`` applied (via ``ast.unparse``)."""
    tree = ast.parse(source)
    sites = _sites(tree, source.splitlines())
    node, operator, _, replacement = sites[index]
    new_tree = _Swap(node, operator, replacement).visit(tree)
    ast.fix_missing_locations(new_tree)
    return ast.unparse(new_tree)


def _mutated_line(source: str, mutant: Mutant) -> str:
    """The mutated statement's source line with the change noted."""
    line = source.splitlines()[mutant.line - 1].strip() if mutant.line else ""
    return f"{line}    [{mutant.segment}: {mutant.detail}]"


def _make_copy(dest: Path) -> None:
    shutil.copytree(ROOT / "tidemark", dest / "tidemark", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", dest / "tests", ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def _env(copy_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy_root) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("TIDEMARK_SHARED_DATA", str(ROOT.parent / "shared" / "data"))
    env.setdefault("TIDEMARK_SHARED_SEEDS", str(ROOT.parent / "shared" / "seeds"))
    return env


def _run_tests(copy_root: Path, tests: list[str], timeout: float) -> tuple[str, float]:
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=copy_root, env=_env(copy_root), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - start
    took = time.monotonic() - start
    if proc.returncode == 0:
        return "passed", took
    if proc.returncode == 5:
        return "no-tests", took
    return "failed", took


def run(
    module: str, tests: list[str], sample: int | None, seed: int, timeout: float | None, only: list[int] | None
) -> int:
    module_path = (ROOT / module).resolve()
    rel = module_path.relative_to(ROOT)
    source = module_path.read_text()
    mutants = enumerate_mutants(source)
    chosen = mutants
    if only:
        chosen = [mutants[i] for i in only]
    elif sample is not None and sample < len(mutants):
        chosen = sorted(random.Random(seed).sample(mutants, sample), key=lambda m: m.index)
    print(f"{rel}: {len(mutants)} mutants, running {len(chosen)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tidemark-mutation-") as tmp:
        copy_root = Path(tmp)
        _make_copy(copy_root)
        target = copy_root / rel
        # Baseline: the unparsed (unmutated) module must pass, and the copy must be what is imported.
        target.write_text(ast.unparse(ast.parse(source)))
        probe = subprocess.run(
            [sys.executable, "-c", "import tidemark; print(tidemark.__file__)"],
            cwd=copy_root,
            env=_env(copy_root),
            capture_output=True,
            text=True,
            check=True,
        )
        if not probe.stdout.strip().startswith(str(copy_root)):
            print(f"the copy is not imported (got {probe.stdout.strip()})", file=sys.stderr)
            return 2
        outcome, base = _run_tests(copy_root, tests, timeout=600)
        if outcome != "passed":
            print(f"baseline: the focused tests do not pass on the unmutated module ({outcome})", file=sys.stderr)
            return 2
        limit = timeout if timeout is not None else max(10.0, 3 * base + 5)
        print(f"baseline {base:.1f}s; timeout {limit:.0f}s", flush=True)
        killed, survivors = 0, []
        for n, m in enumerate(chosen, 1):
            target.write_text(mutate(source, m.index))
            outcome, took = _run_tests(copy_root, tests, timeout=limit)
            if outcome == "passed":
                survivors.append(m)
            else:
                killed += 1
            print(f"  [{n}/{len(chosen)}] #{m.index} {rel}:{m.line} {m.operator} {outcome} ({took:.1f}s)", flush=True)
    survived = len(survivors)
    total = killed + survived
    score = 100.0 * killed / total if total else float("nan")
    print(f"\n{rel}: killed {killed}, survived {survived}, score {score:.1f}%")
    for m in survivors:
        print(f"SURVIVED #{m.index} {rel}:{m.line} {m.operator} | {_mutated_line(source, m)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("module", help="the module to mutate, e.g. tidemark/core/metrics.py")
    parser.add_argument("tests", nargs="+", help="the focused test files (or node ids) to run per mutant")
    parser.add_argument("--sample", type=int, default=None, help="run a uniform random sample of N mutants")
    parser.add_argument("--seed", type=int, default=0, help="seed for --sample (default 0)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per mutant (default 3x baseline + 5)")
    parser.add_argument("--only", type=int, nargs="*", default=None, help="run only these mutant indexes")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    # A terminated run still removes its temporary copy.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.list:
        source = (ROOT / args.module).read_text()
        for m in enumerate_mutants(source):
            print(f"#{m.index} {args.module}:{m.line} {m.operator} | {_mutated_line(source, m)}")
        return 0
    return run(args.module, args.tests, args.sample, args.seed, args.timeout, args.only)


if __name__ == "__main__":
    sys.exit(main())
