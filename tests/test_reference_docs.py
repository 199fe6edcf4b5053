"""docs/reference/ keeps up with the code: every command and flag in cli.md, every metric
family in metrics.md.

``python -m tests.test_reference_docs`` rewrites docs/reference/cli.md from the parsers.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
from pathlib import Path

from tests.docblocks import ROOT
from werk.cli.main import build_parser

CLI_DOC = ROOT / "docs" / "reference" / "cli.md"
METRICS_DOC = ROOT / "docs" / "reference" / "metrics.md"
HEADER = """# Reference: the `werk` command

Every command and flag, as `werk COMMAND --help` prints them. This file is generated: run
`.venv/bin/python -m tests.test_reference_docs` after changing a command, and
tests/test_reference_docs.py checks that it is current.
"""


def parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"werk": parser, **{f"werk {name}": sub for name, sub in action.choices.items()}}


def help_text(parser: argparse.ArgumentParser) -> str:
    os.environ["COLUMNS"] = "100"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        parser.print_help()
    return out.getvalue()


def render() -> str:
    parts = [HEADER]
    for name, parser in parsers().items():
        parts.append(f"\n## `{name}`\n\n<!-- not-run: help text -->\n```text\n")
        parts.append(help_text(parser).rstrip() + "\n```\n")
    return "".join(parts)


def words(text: str) -> str:
    return " ".join(text.split())


REGENERATE = "; run .venv/bin/python -m tests.test_reference_docs to regenerate cli.md"


def test_cli_reference_names_every_command_flag_and_help() -> None:
    doc = words(CLI_DOC.read_text())
    for name, parser in parsers().items():
        assert f"## `{name}`" in CLI_DOC.read_text(), (
            f"cli.md has no section for {name}" + REGENERATE
        )
        assert words(parser.description or "") in doc, (
            f"{name}: description out of date" + REGENERATE
        )
        for action in parser._actions:
            for option in action.option_strings:
                assert option in doc, f"{name} {option} is missing from cli.md" + REGENERATE
            if action.help and action.help != argparse.SUPPRESS and "%" not in action.help:
                assert words(action.help) in doc, (
                    f"{name} {action.dest}: help out of date" + REGENERATE
                )


async def test_metrics_reference_names_every_family(tmp_path: Path) -> None:
    from tests.webui.conftest import client_of, start_server

    server = await start_server(tmp_path / "data")
    try:
        async with client_of(server) as client:
            text = (await client.get("/metrics")).text
    finally:
        await server.stop()
    families = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    assert families
    doc = METRICS_DOC.read_text()
    missing = [f for f in sorted(families) if f not in doc and f.removesuffix("_total") not in doc]
    assert not missing, f"docs/reference/metrics.md does not list {missing}"


if __name__ == "__main__":
    CLI_DOC.write_text(render())
