"""The documentation matches the code: every configuration variable is in README.md's table (and in its
Chinese edition), and every command the READMEs show is one the CLI knows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from permit_ocr.config import SPEC
from permit_ocr_local.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_every_config_variable_is_documented(readme: str) -> None:
    text = (REPO / readme).read_text()
    table = set(re.findall(r"^\| `([A-Z_]+)` \|", text, flags=re.M))
    assert table == set(SPEC), f"undocumented: {set(SPEC) - table}; stale: {table - set(SPEC)}"


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_every_permit_ocr_command_in_the_readme_exists(readme: str) -> None:
    text = (REPO / readme).read_text()
    used = set(re.findall(r"permit-ocr ([a-z][a-z-]+)", text))
    assert used <= set(COMMANDS), used - set(COMMANDS)


def test_every_make_target_in_the_readme_exists() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    used = set(re.findall(r"(?:^|`)make ([a-z][a-z-]+)", (REPO / "README.md").read_text(), flags=re.M))
    assert used <= targets, used - targets
