"""The function under the RAM policy rendered from s.yaml: the OSS stand-in enforces it on the function's key,
so every request the pipeline makes (reads, signed URL, results, error records, claims) must be granted, and
nothing outside the granted patterns is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import alibabacloud_oss_v2 as oss
import pytest

from permit_ocr.config import load_config
from permit_ocr.handler import App
from permit_ocr_local.fcruntime.deployment import load_s_yaml
from permit_ocr_local.fcruntime.stack import LocalStack, StackOptions
from permit_ocr_local.standins import ram
from permit_ocr_local.tools.deploycheck import render_policy
from support import Bucket, invoke, permit_image

REPO = Path(__file__).resolve().parents[2]
ADMIN = ("LTAIlocaladmin", "admin-secret", None)  # the uploader: not the function's role


@pytest.fixture
def governed(tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(StackOptions(root=tmp_path / "root", topic="permit-ocr-failures")) as stack:
        stack.keyring.add(ADMIN[0], ADMIN[1])
        stack.keyring.set_policy(stack.access_key_id, render_policy(load_s_yaml(REPO / "s.yaml")))
        yield stack


@pytest.mark.parametrize("mode", ["url", "body"])
def test_the_whole_path_works_with_only_the_rendered_policy(mode: str, governed: LocalStack) -> None:
    uploads = Bucket(governed, credentials=ADMIN)
    env = {**governed.env(), "IMAGE_SOURCE": mode}
    app = App(load_config(env), environ=env)
    good = uploads.put("uploads/ok.jpg", permit_image(fmt="JPEG"))
    bad = uploads.put("uploads/cat.png", permit_image({}))
    assert invoke(app, good, bad)["counts"] == {"result": 1, "error": 1}
    assert invoke(app, good)["counts"] == {"duplicate": 1}
    fixed = uploads.put("uploads/cat.png", permit_image())
    assert invoke(app, fixed)["counts"] == {"result": 1}  # and its stale error record is deleted
    assert not uploads.exists("uploads/cat.png.error.json")
    assert not list(uploads.root.glob("uploads/*.claim.*"))  # claims released: DeleteObject granted
    assert governed.oss is not None
    assert not [k for k in governed.oss.service.stats if k.startswith("error:AccessDenied")]


def test_the_function_key_cannot_touch_objects_outside_its_patterns(governed: LocalStack) -> None:
    function_key = Bucket(governed)
    with pytest.raises(oss.exceptions.OperationError) as denied:
        function_key.put("uploads/new.jpg", b"not ours to write")
    assert denied.value.unwrap().code == "AccessDenied"  # type: ignore[attr-defined]
    with pytest.raises(oss.exceptions.OperationError):
        function_key.get("private/payroll.csv")


def test_ram_evaluation_denies_by_default_and_lets_an_explicit_deny_win() -> None:
    policy = {"Statement": [
        {"Effect": "Allow", "Action": ["oss:GetObject"], "Resource": ["acs:oss:*:*:b/uploads/*"]},
        {"Effect": "Deny", "Action": "oss:GetObject", "Resource": "acs:oss:*:*:b/uploads/secret/*"},
    ]}
    assert ram.allowed(policy, "oss:GetObject", "acs:oss:cn-hangzhou:1:b/uploads/a/b[1].jpg")
    assert not ram.allowed(policy, "oss:GetObject", "acs:oss:cn-hangzhou:1:b/uploads/secret/x.jpg")
    assert not ram.allowed(policy, "oss:PutObject", "acs:oss:cn-hangzhou:1:b/uploads/x.jpg")
    assert not ram.allowed(policy, "oss:GetObject", "acs:oss:cn-hangzhou:1:b/other/x.jpg")
