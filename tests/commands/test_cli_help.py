"""What `permit-ocr` and `permit-ocr COMMAND --help` tell a newcomer: the commands when none is given, every
option's default and every exit code in the help, no reST marks, and a mistyped option or command answered in
one line with the one meant."""

from __future__ import annotations

import argparse
import subprocess

import pytest

from commands.test_cli_stack_invoke import CLI
from permit_ocr_local.cli import COMMANDS, Parser, build_parser


def chosen(name: str) -> Parser:
    parser = build_parser([name])
    assert parser.chosen is not None
    return parser.chosen


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_help_names_its_exit_codes_and_every_default_without_rest_marks(name: str) -> None:
    sub = chosen(name)
    text = sub.format_help()
    assert "Exit codes:" in " ".join(text.split()), f"permit-ocr {name} --help names no exit codes"
    assert "``" not in text
    for action in sub._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        if action.default not in (None, False, [], argparse.SUPPRESS):
            assert "default" in (action.help or ""), f"permit-ocr {name} {action.option_strings[0]}: default?"


def test_permit_ocr_alone_lists_the_commands_instead_of_an_error() -> None:
    ran = cli()
    assert ran.returncode == 2
    assert "required" not in ran.stdout + ran.stderr
    assert all(name in ran.stdout for name in COMMANDS) and "permit-ocr run" in ran.stdout


@pytest.mark.parametrize(("args", "says"), [
    (["invoke", "--objet", "x"], "permit-ocr invoke: no option --objet; did you mean --object?"),
    (["stack", "--root", "r", "--triger", "s.yaml"], "permit-ocr stack: no option --triger; did you mean --trigger?"),
    (["invok"], "permit-ocr: no command 'invok'; did you mean invoke?"),
    (["run", "--ocr-backend", "engin"], "permit-ocr run: --ocr-backend: no value 'engin'; did you mean engine?"),
    (["review", "--buckt", "b"], "permit-ocr review: no option --buckt; did you mean --bucket?"),
])
def test_a_mistyped_option_or_command_is_one_line_naming_the_one_meant(args: list[str], says: str) -> None:
    ran = cli(*args)
    assert ran.returncode == 2 and ran.stdout == ""
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(says), ran.stderr
