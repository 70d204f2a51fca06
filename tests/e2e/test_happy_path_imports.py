"""Issue 23's promise for uploads the API already takes: today's path untouched, the conversion libraries never
imported. Checked in a fresh interpreter (this test process has Pillow loaded for its own needs), with the real
handler against the local stack; a HEIC in the same run must import them, so the check can fail."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from permit_ocr_local.fcruntime.stack import LocalStack, StackOptions
from support import SAMPLE_TRUTH, Bucket, permit_image

REPO = Path(__file__).resolve().parents[2]
LIBRARIES = ("PIL", "pi_heif", "pypdfium2")

CHILD = """
import json, sys
from permit_ocr.config import load_config
from permit_ocr.handler import App
from permit_ocr_local.fcruntime.context import FcContext, Upload, oss_event
env, uploads = json.loads(sys.argv[1]), json.loads(sys.argv[2])
app = App(load_config(env), environ=env)
for upload in uploads:
    result = app.handle(oss_event([Upload(*upload)]), FcContext())
    loaded = sorted(m for m in LIBRARIES if m in sys.modules)
    print(json.dumps({"key": upload[1], "counts": result["counts"], "loaded": loaded}), flush=True)
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(StackOptions(root=tmp_path_factory.mktemp("root"), ocr_backend="truth")) as s:
        yield s


def test_an_upload_the_api_takes_imports_no_conversion_library_and_a_heic_does(stack: LocalStack) -> None:
    bucket = Bucket(stack)
    plain = [bucket.put("uploads/plain.png", permit_image(SAMPLE_TRUTH)),
             bucket.put("uploads/plain.jpg", permit_image(SAMPLE_TRUTH, fmt="JPEG"))]
    heic = bucket.put("uploads/phone.heic", (REPO / "samples" / "macao-phone.heic").read_bytes())
    uploads = [[u.bucket, u.key, u.etag, u.size] for u in (*plain, heic)]
    ran = subprocess.run([sys.executable, "-c", CHILD.replace("LIBRARIES", repr(LIBRARIES)),
                          json.dumps(dict(stack.env())), json.dumps(uploads)],
                         capture_output=True, text=True, timeout=180, cwd=REPO)
    assert ran.returncode == 0, ran.stderr[-3000:]
    rows = [json.loads(line) for line in ran.stdout.splitlines() if line.startswith("{")]
    assert [r["key"] for r in rows] == ["uploads/plain.png", "uploads/plain.jpg", "uploads/phone.heic"]
    assert rows[0]["counts"] == {"result": 1} and rows[1]["counts"] == {"result": 1}
    assert rows[0]["loaded"] == [] and rows[1]["loaded"] == []
    assert "pi_heif" in rows[2]["loaded"] and "PIL" in rows[2]["loaded"]  # converted: the libraries came in
