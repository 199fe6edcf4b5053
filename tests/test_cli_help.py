"""Every ``werk`` command and every flag explains itself in ``--help``."""

from __future__ import annotations

import argparse

import pytest

from werk.cli.main import build_parser, main

VALUELESS = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction)


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def summaries() -> dict[str, str]:
    """Each command's one-line ``help`` as listed by ``werk --help``."""
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: choice.help or "" for choice in action._choices_actions}


def test_every_command_has_a_summary_and_a_description() -> None:
    found = commands()
    assert {"server", "worker", "backup", "restore", "bench"} <= set(found)
    for name, parser in found.items():
        assert summaries().get(name), f"werk {name} has no one-line help in `werk --help`"
        assert parser.description and len(parser.description) > 40, f"werk {name}: description"


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_flag_has_help_and_says_its_default(name: str) -> None:
    for action in commands()[name]._actions:
        flag = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"werk {name} {flag}: no help"
        takes_value = action.option_strings and not isinstance(action, VALUELESS)
        if takes_value and not action.required:
            assert "default" in action.help, f"werk {name} {flag}: help names no default"
        if action.choices and not isinstance(action.choices, dict):
            assert all(isinstance(choice, str) for choice in action.choices), (name, flag)


def test_the_top_level_flags_have_help() -> None:
    for action in build_parser()._actions:
        assert action.help, action.option_strings


@pytest.mark.parametrize("name", sorted(commands()))
def test_help_prints_and_exits_zero(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: werk {name}")
    assert "[]" not in out, "a bogus empty choice is listed"
    for action in commands()[name]._actions:
        for option in action.option_strings:
            assert option in out
