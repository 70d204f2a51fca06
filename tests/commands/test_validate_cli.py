"""``permit-ocr validate``: exit codes, the re-run checks, and no personal data unless --show-values."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from permit_ocr_local.cli import main

ROOT = Path(__file__).resolve().parents[2]
_BLOCKS = re.findall(r"```json\n(.*?)```", (ROOT / "docs" / "result-document.md").read_text(encoding="utf-8"), re.S)
EXAMPLES = {d["type"]: d for d in map(json.loads, _BLOCKS) if isinstance(d, dict) and "type" in d}

# values from the sample permit and the example documents that must not be printed by default
PII = ("何郑", "HE,CHENG", "CHENG", "2000.01.01", "2000-01-01", "H10387877", "2019-04-09", "permit-0001.jpg")


def write(tmp_path: Path, name: str, doc: Any) -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def validate(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    code = main(["validate", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def result() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLES["result"])


def test_valid_result_exits_0_and_lists_the_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(capsys, write(tmp_path, "a.json", EXAMPLES["result"]))
    assert code == 0
    assert "a.json: valid result" in out
    assert "re-run at 2018-01-01" in out  # the document's own processing day (UTC+8)
    assert "pass  validPeriod.span" in out and "FAIL" not in out
    assert "needsReview: false (-)" in out
    assert "differs" not in out


def test_valid_error_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(capsys, write(tmp_path, "e.json", EXAMPLES["error"]))
    assert code == 0
    assert "valid error" in out and "illegalImageSize at stage ocr, permanent, http 400" in out
    assert "permit-0002.jpg" not in out and "The image size is illegal" not in out


def test_any_invalid_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str], result: dict[str, Any]) -> None:
    del result["source"]["key"]
    good = write(tmp_path, "good.json", EXAMPLES["error"])
    bad = write(tmp_path, "bad.json", result)
    code, out = validate(capsys, good, bad)
    assert code == 1
    assert "good.json: valid error" in out
    assert "bad.json: INVALID result" in out and "schema: $.source: 'key' is a required property" in out
    assert "pass  kind.known" in out  # the checks still run on an invalid envelope


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "INVALID not JSON (line 1"),
        ("[]", "$: document is not a JSON object"),
        ('{"type": "pointer"}', "$.type: expected one of"),
    ],
)
def test_unusable_files_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str) -> None:
    code, out = validate(capsys, write(tmp_path, "x.json", content))
    assert code == 1 and message in out


def test_missing_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(capsys, tmp_path / "nope.json")
    assert code == 1 and "cannot read: FileNotFoundError" in out


def test_no_personal_data_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], result: dict[str, Any]
) -> None:
    result["data"]["data"]["birthDate"] = "2000.01.01x"  # failing checks and schema errors must not quote either
    result["normalized"]["permitNumber"] = 10387877
    code, out = validate(capsys, write(tmp_path, "r.json", result), "--today", "2026-01-01")
    assert code == 1
    assert "FAIL  birthDate.valid" in out and "unparsed  birthDate: badFormat" in out
    assert "stored verdict differs" in out
    assert not [v for v in (*PII, "10387877") if v in out], out


def test_show_values_prints_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(capsys, write(tmp_path, "r.json", EXAMPLES["result"]), "--show-values")
    assert code == 0
    assert 'surname: "HE"' in out and 'permitNumber: "H10387877"' in out and 'birthDate: "2000-01-01"' in out
    assert "permit-uploads/incoming/2018/01/01/permit-0001.jpg" in out


def test_today_and_min_prob_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], result: dict[str, Any]) -> None:
    result["data"]["prism_keyValueInfo"][2]["valueProb"] = 80
    path = write(tmp_path, "r.json", result)
    code, out = validate(capsys, path, "--today", "2026-01-01")
    assert code == 0  # needsReview does not change the exit status; the stored verdict is just out of date
    assert "re-run at 2026-01-01" in out and "FAIL  confidence: valueProb below 90: nameEn" in out
    assert "needsReview: true (confidence)" in out and "stored verdict differs: needsReview false (-)" in out
    _, out = validate(capsys, path, "--min-prob", "80")
    assert "pass  confidence" in out


def test_min_prob_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], result: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    result["data"]["prism_keyValueInfo"][2]["valueProb"] = 80
    monkeypatch.setenv("REVIEW_MIN_PROB", "75")
    _, out = validate(capsys, write(tmp_path, "r.json", result))
    assert "min_prob 75" in out and "pass  confidence" in out


def test_result_without_data_object(tmp_path: Path, capsys: pytest.CaptureFixture[str], result: dict[str, Any]) -> None:
    result["data"] = {"figure": []}
    code, out = validate(capsys, write(tmp_path, "r.json", result))
    assert code == 1 and "checks: not re-run (no data.data object)" in out
