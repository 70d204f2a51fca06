"""The documentation matches the code: every configuration variable is in docs/configuration.md's table (and in
its Chinese edition), every command the Markdown files show is one the CLI and the Makefile know, every link
resolves, and each README is read in two minutes: short, what/try/deploy on its first screen, then a table of
contents linking each reference page once."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from permit_ocr.config import SPEC
from permit_ocr_local.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", "var", "dist", "build", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules"}


def markdown_files() -> list[Path]:
    return [md for md in sorted(REPO.rglob("*.md")) if not SKIP_DIRS & set(md.relative_to(REPO).parts)]


@pytest.mark.parametrize("page", ["docs/configuration.md", "docs/configuration.zh-CN.md"])
def test_every_config_variable_is_documented(page: str) -> None:
    text = (REPO / page).read_text()
    table = set(re.findall(r"^\| `([A-Z_]+)` \|", text, flags=re.M))
    assert table == set(SPEC), f"undocumented: {set(SPEC) - table}; stale: {table - set(SPEC)}"


@pytest.mark.parametrize("md", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_permit_ocr_command_in_the_markdown_exists(md: Path) -> None:
    text = md.read_text(encoding="utf-8")
    code = "\n".join(re.findall(r"```.*?```", text, flags=re.S) + re.findall(r"`[^`\n]+`", text))
    used = set(re.findall(r"""(?<!["'])permit-ocr ([a-z][a-z-]+)""", code))  # not "permit-ocr function role"
    assert used <= set(COMMANDS), used - set(COMMANDS)


@pytest.mark.parametrize("md", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_make_target_in_the_markdown_exists(md: Path) -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    used = set(re.findall(r"(?:^|`)make ([a-z][a-z-]+)", md.read_text(encoding="utf-8"), flags=re.M))
    assert used <= targets, used - targets


@pytest.mark.parametrize("md", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_in_the_markdown_resolves(md: Path) -> None:
    text = re.sub(r"```.*?```", "", md.read_text(encoding="utf-8"), flags=re.S)
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    broken = [t for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")
              and not (md.parent / t.split("#")[0]).exists()]
    assert broken == [], f"{md.relative_to(REPO)}: {broken}"


# --- the READMEs: read in two minutes ----------------------------------------------------------------------------

def _toc_links(text: str) -> list[str]:
    """The pages the table of contents links (the table under its '## Contents' / '## 目录' heading)."""
    toc = re.search(r"^## (?:Contents|目录)\n(.*?)(?=^## )", text, flags=re.M | re.S)
    assert toc, "no table of contents"
    return re.findall(r"\]\((docs/[^)#]+)\)", toc.group(1))


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_the_readme_says_what_how_to_try_and_how_to_deploy_on_its_first_screen(readme: str) -> None:
    lines = (REPO / readme).read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"{readme} has {len(lines)} lines; move reference material to docs/"
    first = "\n".join(lines[:40])
    for needed in ("make run", "make test", "s deploy", "RecognizeExitEntryPermitToMainland"):
        assert needed in first, f"{readme}: {needed!r} not in the first 40 lines"
    assert "## Contents" in first or "## 目录" in first


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_the_table_of_contents_links_each_reference_page_once(readme: str) -> None:
    links = _toc_links((REPO / readme).read_text(encoding="utf-8"))
    assert len(links) == len(set(links)), f"linked twice: {sorted({x for x in links if links.count(x) > 1})}"
    pages = {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")}
    # the Chinese README links a page's Chinese edition where one exists, the English one otherwise
    chinese = readme.endswith("zh-CN.md")
    wanted = {p for p in pages if p.endswith(".zh-CN.md") == chinese
              or (chinese and p.replace(".md", ".zh-CN.md") not in pages)}
    assert set(links) == wanted, f"missing: {sorted(wanted - set(links))}; extra: {sorted(set(links) - wanted)}"
    everywhere = re.findall(r"\]\((docs/[^)#]+\.md)\)", (REPO / readme).read_text(encoding="utf-8"))
    assert sorted(everywhere) == sorted(links), "a reference page is linked once, from the table of contents"


# --- every shell block of every Markdown file: run here, or marked as needing the cloud --------------------------

FENCE = re.compile(r"^```(sh|bash|shell|console)\s*$")
MARK = re.compile(r"^<!-- docs-test: (run|cloud|make|tested-by)\b(.*)-->$")


def shell_blocks() -> list[tuple[str, int, str, str]]:
    """(file, line, marker, code) of every fenced shell block; marker is '' when the line above has none."""
    out = []
    for md in markdown_files():
        rel = md.relative_to(REPO)
        lines = md.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            if FENCE.match(lines[i].strip()):
                above = next((x.strip() for x in reversed(lines[:i]) if x.strip()), "")
                m = MARK.match(above)
                end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
                mark = m.group(1) if m else ""
                if mark == "tested-by":  # a test of its own runs the block (it stages a situation first)
                    mark = f"tested-by {m.group(2).strip()}" if m else ""
                out.append((str(rel), i + 1, mark, "\n".join(lines[i + 1 : end])))
                i = end
            i += 1
    return out


BLOCKS = shell_blocks()


def test_every_shell_block_is_run_here_or_marked_as_needing_the_cloud() -> None:
    unmarked = [f"{f}:{n}" for f, n, mark, _ in BLOCKS if not mark]
    assert unmarked == [], "mark each with <!-- docs-test: run|cloud|make|tested-by TEST_FILE --> on the line above"
    assert {"run", "cloud", "make"} <= {mark for *_, mark, _ in BLOCKS}


@pytest.mark.parametrize(("path", "line", "mark"), [(f, n, m) for f, n, m, _ in BLOCKS if m.startswith("tested-by")])
def test_a_block_tested_elsewhere_names_a_test_that_reads_its_file(path: str, line: int, mark: str) -> None:
    test_file = REPO / mark.split(" ", 1)[1]
    assert test_file.is_file(), f"{path}:{line}: no test file {test_file}"
    assert Path(path).name in test_file.read_text(), f"{path}:{line}: {test_file.name} does not read {path}"


@pytest.mark.parametrize(("path", "line", "code"), [(f, n, c) for f, n, m, c in BLOCKS if m == "make"],
                         ids=lambda v: str(v).replace("/", "_") if isinstance(v, str) and "\n" not in v else "")
def test_make_blocks_name_existing_targets_only(path: str, line: int, code: str) -> None:
    targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), flags=re.M))
    for cmd in (c.split("#")[0].split() for c in code.splitlines() if c.strip()):
        assert cmd[0] == "make" and set(cmd[1:]) <= targets, f"{path}:{line}: {cmd}"


def _sandbox(tmp: Path) -> Path:
    """A checkout as a user has it after `make`: the repository's files, a fresh var/ and its own deploy/."""
    for name in (".venv", "samples", "events", "function", "engine-function", "local", "s.yaml", "s.eventbridge.yaml",
                 "s.selfhosted.yaml", "schema", "tests", "pyproject.toml"):
        (tmp / name).symlink_to(REPO / name)
    (tmp / "var").mkdir()
    (tmp / "deploy").mkdir()
    for f in (REPO / "deploy").iterdir():
        (tmp / "deploy" / f.name).write_bytes(f.read_bytes())
    return tmp


@pytest.mark.parametrize(("path", "line", "code"), [(f, n, c) for f, n, m, c in BLOCKS if m == "run"],
                         ids=lambda v: str(v).replace("/", "_") if isinstance(v, str) and "\n" not in v else "")
def test_run_blocks_run_as_written(path: str, line: int, code: str, tmp_path: Path) -> None:
    import subprocess

    box = _sandbox(tmp_path)
    env = {k: v for k, v in os.environ.items()  # a new shell: none of the function's variables
           if k not in SPEC and not k.startswith(("ALIBABA_CLOUD_", "FC_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # as after `. .venv/bin/activate`
    try:
        ran = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=box, env=env, capture_output=True,
                             text=True, timeout=600)
    finally:  # a failed block must not leave its stack running
        for root in box.glob("var/*/.stack/pid"):
            subprocess.run([str(REPO / ".venv" / "bin" / "permit-ocr"), "stack", "--root", str(root.parent.parent),
                            "--stop"], cwd=box, capture_output=True, timeout=60)
    assert ran.returncode == 0, f"{path}:{line} failed:\n{ran.stderr[-3000:]}"
    assert "Traceback" not in ran.stderr
