"""permit-ocr check-config as a user meets it: --print-lifecycle writes XML a parser (and ossutil) accepts, and a
typo in s.yaml is one line naming the file, line and column."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from commands.test_cli_stack_invoke import CLI

REPO = Path(__file__).resolve().parents[2]


def check_config(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "check-config", *args], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_print_lifecycle_writes_one_well_formed_xml_document_and_names_its_bucket_on_stderr() -> None:
    ran = check_config("s.yaml", "--print-lifecycle")
    assert ran.returncode == 0
    assert ran.stdout.startswith("<?xml ")  # nothing before the declaration
    root = ET.fromstring(ran.stdout.encode())
    assert root.tag == "LifecycleConfiguration" and root.findall("Rule")
    assert "permit-ocr-demo" in ran.stderr and len(ran.stderr.strip().splitlines()) == 1


def test_a_yaml_typo_is_one_line_naming_the_file_line_and_column(tmp_path: Path) -> None:
    broken = tmp_path / "s.yaml"
    lines = (REPO / "s.yaml").read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  bucket:"))
    lines[at] = "  bucket: [permit-ocr-demo"  # an unclosed flow sequence
    broken.write_text("\n".join(lines) + "\n")
    for option in ((), ("--print-policy",), ("--print-lifecycle",)):
        ran = check_config(str(broken), *option)
        assert ran.returncode == 1 and ran.stdout == ""
        err = ran.stderr.strip().splitlines()
        assert len(err) == 1, ran.stderr
        assert err[0].startswith(f"permit-ocr check-config: {broken}, line ") and "not valid YAML" in err[0]
        assert "<unicode string>" not in ran.stderr and "Traceback" not in ran.stderr
