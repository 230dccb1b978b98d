"""MkDocs hooks of the tidemark site.

* The CLI reference, generated from tidemark's own argparse parser when the
  site is built, so it cannot drift from the code: ``docs/cli.md`` holds the
  marker ``<!-- cli-reference -->``, replaced with every command's
  ``--help``, subcommands included.
* The docstrings' Sphinx roles (``:class:`Result```) shown as plain code in
  the API reference (mkdocstrings renders them as Markdown).
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):(?=<code>)")

MARKER = "<!-- cli-reference -->"


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def _help(parser: argparse.ArgumentParser) -> str:
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; the page is the same on every machine
    try:
        return parser.format_help().rstrip()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def reference() -> str:
    from tidemark.adapters.cli import build_parser

    parser = build_parser()
    parts = ["## tidemark", "", "```text", _help(parser), "```", ""]
    for name, sub in _subcommands(parser):
        parts += [f"## tidemark {name}", "", "```text", _help(sub), "```", ""]
        for child, subsub in _subcommands(sub):
            parts += [f"### tidemark {name} {child}", "", "```text", _help(subsub), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, reference())
    return markdown


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    return ROLE.sub("", html)
