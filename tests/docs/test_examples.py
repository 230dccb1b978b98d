"""Every example in the documentation runs.

Each page of ``docs/*.md`` runs in its own temporary folder, top to bottom:

* every ```` ```python ```` block is executed, all blocks of a page in one
  namespace (like a notebook), with the folder as working directory;
* every command line of a shell block (```` ```console ````: lines starting
  with ``$ ``; ```` ```bash ````/```` ```sh ````: every line) that runs
  ``tidemark`` is run with this checkout's ``tidemark`` on the PATH, and
  must exit 0.

A block is left out only when the line right before its fence is the
marker ``<!-- docs-test: skip (REASON) -->`` with a reason (a live exchange,
an install step). ``<!-- docs-test: exit N -->`` expects exit code ``N``
from every command of the next block (examples of mistakes). The markers
are HTML comments, invisible on the site; docs/contributing.md says so too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
MARKER = re.compile(r"<!--\s*docs-test:\s*(skip|exit)\s*(.*?)\s*-->\s*$")
SHELLS = {"console", "bash", "sh", "shell"}


@dataclass
class Block:
    page: str
    line: int
    language: str
    code: str
    marker: tuple[str, str] | None


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    out = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        found = MARKER.search(before)
        line = text.count("\n", 0, match.start()) + 1
        marker = (found.group(1), found.group(2)) if found else None
        out.append(Block(page.name, line, match.group(1), match.group(2), marker))
    return out


def commands(block: Block) -> list[str]:
    """The command lines of a shell block (``\\`` continuations joined)."""
    lines = block.code.splitlines()
    if block.language == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    joined, pending = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return [c for c in joined if c.strip() and not c.lstrip().startswith("#")]


PAGES = sorted(DOCS.glob("*.md"))


def test_the_pages_are_found_and_every_marker_has_a_reason() -> None:
    assert len(PAGES) >= 10, PAGES
    for page in PAGES:
        for block in blocks(page):
            if block.marker and block.marker[0] == "skip":
                assert re.fullmatch(r"\(.+\)", block.marker[1]), f"{page.name}:{block.line}: skip needs (a reason)"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_the_examples_of_a_page_run(page: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "100",
    }
    # The page's python blocks live in one module whose file holds each block at
    # its line in the page: tracebacks point into the page, and inspect finds
    # the source of a class an example defines (as in a notebook or a script).
    page_blocks = blocks(page)
    lines = [""] * (page.read_text().count("\n") + 2)
    for block in page_blocks:
        if block.language == "python" and not block.marker:
            for k, code_line in enumerate(block.code.splitlines()):
                lines[block.line + k] = code_line
    source = tmp_path / f"docs_{page.stem}.py"
    source.write_text("\n".join(lines))
    module = types.ModuleType(source.stem)
    module.__file__ = str(source)
    sys.modules[module.__name__] = module
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        for block in page_blocks:
            where = f"{block.page}:{block.line}"
            if block.marker and block.marker[0] == "skip":
                continue
            if block.language == "python":
                code = compile("\n" * block.line + block.code, str(source), "exec")
                try:
                    exec(code, module.__dict__)
                except Exception as exc:
                    pytest.fail(f"{where}: {type(exc).__name__}: {exc}")
            elif block.language in SHELLS:
                expected = int(block.marker[1]) if block.marker and block.marker[0] == "exit" else 0
                for command in commands(block):
                    if "tidemark" not in command:
                        continue
                    done = subprocess.run(
                        ["bash", "-c", f"set -o pipefail; {command}" if expected == 0 else command],
                        cwd=tmp_path,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=120,
                    )
                    assert done.returncode in ((0, 141) if expected == 0 else (expected,)), (
                        f"{where}: {command!r} exited {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
                    )
                    assert "Traceback" not in done.stderr, f"{where}: {command!r}\n{done.stderr}"
    finally:
        os.chdir(here)
        sys.modules.pop(module.__name__, None)
