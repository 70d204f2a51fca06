"""The house plan holds: imports point down the wings with no cycle (pyproject.toml's import-linter
contracts), and no module passes the line budget unless docs/architecture.md names it and says why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from importlinter import configuration
from importlinter.application.use_cases import lint_imports

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
LINE_BUDGET = 400
COUNTED = ("function", "local", "bench")


def over_budget_named_by_the_doc() -> set[str]:
    section = DOC.read_text(encoding="utf-8").split("## Modules over the line budget", 1)[1]
    return set(re.findall(r"^- `([^`]+\.py)`", section, flags=re.M))


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_import_contracts_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    configuration.configure()  # what the lint-imports command does first
    kept = lint_imports(config_filename=str(REPO / "pyproject.toml"), cache_dir=None, no_logo=True)
    assert kept, capsys.readouterr().out[-4000:]


def test_no_module_over_the_line_budget_unless_the_doc_says_why() -> None:
    named = over_budget_named_by_the_doc()
    over = {p.relative_to(REPO).as_posix(): n for top in COUNTED for p in (REPO / top).rglob("*.py")
            if (n := line_count(p)) > LINE_BUDGET}
    assert not {k: v for k, v in over.items() if k not in named}, "split them, or name them in docs/architecture.md"


def test_the_doc_names_only_modules_that_exist_and_are_over_the_budget() -> None:
    named = over_budget_named_by_the_doc()
    assert named, "the section lost its list"
    stale = sorted(m for m in named if not (REPO / m).is_file() or line_count(REPO / m) <= LINE_BUDGET)
    assert not stale, f"no longer over {LINE_BUDGET} lines (or gone): drop them from docs/architecture.md"


def test_the_doc_names_every_wing_every_stand_in_and_every_tool() -> None:
    text = DOC.read_text(encoding="utf-8")
    root = REPO / "local" / "permit_ocr_local"
    packages = [p.parent.name for p in root.glob("*/__init__.py")]
    packages += [p.parent.name for wing in ("standins", "tools") for p in (root / wing).glob("*/__init__.py")]
    assert not sorted(p for p in packages if f"{p}/" not in text)
