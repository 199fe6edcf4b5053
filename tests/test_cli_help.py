"""Every ``werk`` command and every flag explains itself in ``--help``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from werk.cli.argtypes import positive_int, seconds
from werk.cli.main import build_parser, main
from werk.cli.server import build_config
from werk.server.settings import ConfigError

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


NUMBER_TYPES = (int, float, positive_int, seconds)


@pytest.mark.parametrize("name", sorted(commands()))
@pytest.mark.parametrize("text", ["0", "-3", "nan", "inf", "x"])
def test_every_number_flag_refuses_what_it_cannot_mean(
    name: str, text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The findings: `werk worker -c 0` became 10 and `-c -3` ran no job; `werk bench
    # --rounds 0` crashed. A number flag is refused by argparse naming it, or (werk server's
    # flags, which files and variables can set too) by the configuration check.
    parser = commands()[name]
    numbers = [a for a in parser._actions if a.type in NUMBER_TYPES and a.option_strings]
    for action in numbers:
        flag = action.option_strings[-1]
        if text == "0" and action.type is seconds:
            continue  # 0 seconds means at once
        argv = ["x:y"] if name == "worker" else []
        try:
            args = parser.parse_args([*argv, flag, text])
        except SystemExit as exc:
            assert exc.code == 2
            assert f"argument {'/'.join(action.option_strings)}" in capsys.readouterr().err
            continue
        assert name == "server", f"werk {name} {flag} {text} was accepted"
        if text == "0" and flag == "--idle-timeout":
            continue  # 0 is documented: never
        args.config_dir, args.data_dir = str(tmp_path), str(tmp_path / "d")
        with pytest.raises(ConfigError, match=action.dest):
            build_config(args)
