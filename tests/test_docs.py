"""The docs keep up with the code: every verb is specified, every command has help."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from werk.cli.main import SUBCOMMANDS, build_parser, main
from werk.protocol.commands import HELLO, VERBS
from werk.server.handlers import HANDLERS

ROOT = Path(__file__).resolve().parent.parent


def test_every_verb_is_specified_and_handled() -> None:
    spec = (ROOT / "docs" / "protocol.md").read_text()
    headings = set(re.findall(r"^### ([A-Z]+)", spec, re.M))
    headings |= {word for line in re.findall(r"^### (.+)$", spec, re.M) for word in line.split()}
    assert VERBS <= headings | {HELLO}
    assert set(HANDLERS) == VERBS


def test_every_handler_starts_with_its_wire_syntax() -> None:
    for verb, handler in HANDLERS.items():
        assert (handler.__doc__ or "").startswith(verb), verb


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    registered = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(registered) <= set(SUBCOMMANDS) and "server" in registered
    for name in registered:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        assert name in capsys.readouterr().out
    readme = (ROOT / "README.md").read_text()
    assert "werk server" in readme


def test_the_docs_name_settings_as_users_write_them() -> None:
    # A ServerConfig field whose name is neither a conf.d key nor a variable (`web_password`
    # is `[web] password` or WERK_WEB_PASSWORD) is not something a user can set.
    from werk.server.settings import FILE_KEYS

    internal = {field for (_, key), (field, _) in FILE_KEYS.items() if field != key}
    for doc in sorted((ROOT / "docs").rglob("*.md")):
        text = doc.read_text()
        named = sorted(field for field in internal if f"`{field}`" in text)
        assert not named, f"{doc.relative_to(ROOT)} names {named} instead of a setting"
