"""The documented workflow (README "Human review"): `make run` ends with the review hint for the flagged
sample; the stack served again over its root and `permit-ocr review` show that result in the queue, on
127.0.0.1 only, behind the session token, the Host check and a strict Content-Security-Policy."""

from __future__ import annotations

import http.cookiejar
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from commands.test_cli_stack_invoke import CLI, detached_stack

from permit_ocr_local.cli import main
from permit_ocr_local.fcruntime.stack import LocalStack

from .conftest import SPAN_SAMPLE

REPO = Path(__file__).resolve().parents[3]


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def _post(opener: urllib.request.OpenerDirector, url: str, form: dict[str, str],
          headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, urllib.parse.urlencode(form).encode(), headers=headers or {})
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


def test_run_hint_opens_a_review_page_listing_the_flagged_sample(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    samples, root = tmp_path / "samples", tmp_path / "run"
    samples.mkdir()
    for name in (SPAN_SAMPLE.name, SPAN_SAMPLE.with_suffix(".truth.json").name):
        shutil.copy(SPAN_SAMPLE.with_name(name), samples / name)
    code = main(["run", "--root", str(root), "--samples", str(samples), "--s-yaml", str(REPO / "s.yaml"),
                 "--ocr-backend", "truth", "--timeout", "60"])
    out = capsys.readouterr().out
    assert code == 0 and " review " in out
    assert "1 result(s) need a person" in out
    assert "permit-ocr review --bucket permit-ocr-demo --prefix uploads/" in out
    assert f"permit-ocr stack --root {root} --detach" in out

    with detached_stack(root) as env:
        review = subprocess.Popen([*CLI, "review", "--bucket", "permit-ocr-demo", "--prefix", "uploads/",
                                   "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            assert review.stdout is not None
            banner = review.stdout.readline()
            m = re.search(r"open (http://127\.0\.0\.1:(\d+)/)", banner)
            assert m, banner
            url, port = m[1], m[2]
            web = _opener()
            with web.open(url, timeout=30) as r:
                page = r.read().decode()
                csp = r.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp and "http" not in csp.split(
                "img-src")[0]
            token = re.search(r'name="token" value="([^"]+)"', page)
            assert token
            origin = {"Origin": f"http://127.0.0.1:{port}"}
            assert _post(web, url + "start", {"reviewer": "Chen"}, origin)[0] == 403  # no token
            assert _post(web, url + "start", {"reviewer": "Chen", "token": token[1]},
                         {"Origin": "http://evil.example"})[0] == 403  # another site's form
            status, queue = _post(web, url + "start", {"reviewer": "Chen", "token": token[1]}, origin)
            assert status == 200 and '<span id="total">1</span>' in queue
            assert "uploads/hk-review-span.jpg.json" in queue and 'data-check="validPeriod.span"' in queue
            assert "有效期限与年龄不符</span> valid period vs. age (1)" in queue  # the check in words
            rebinding = urllib.request.Request(url, headers={"Host": f"attacker.example:{port}"})
            with pytest.raises(urllib.error.HTTPError) as refused:
                web.open(rebinding, timeout=30)
            assert refused.value.code == 421  # a DNS-rebinding name for 127.0.0.1 gets nothing
        finally:
            review.terminate()
            _, err = review.communicate(timeout=30)
    assert "hk-review-span" not in err and "Chen" not in err  # no object key or name in its log


def test_review_without_credentials_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main(["review", "--bucket", "b"]) == 2
    assert "no credentials" in capsys.readouterr().err


def test_review_on_a_taken_port_says_so_and_exits_2(stack: LocalStack, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["review", "--bucket", "permit-ocr-demo", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "pass --port 0" in err and len(err.strip().splitlines()) == 1  # not Werkzeug's lines before it


def _one_line(ran: subprocess.CompletedProcess[str]) -> str:
    lines = ran.stderr.strip().splitlines()
    assert ran.returncode == 2 and len(lines) == 1 and "Traceback" not in ran.stderr, ran.stderr
    return lines[0]


def test_review_checks_before_serving_a_bucket_typo_a_stopped_stack_and_a_shell_without_exports(
        tmp_path: Path) -> None:
    """Each ends in one line and exit 2 instead of a page that says "NoSuchBucket ... try again in a moment"."""
    root = tmp_path / "root"
    review = [*CLI, "review", "--bucket", "permit-ocr-dem", "--port", "0"]
    with detached_stack(root) as env:
        typo = subprocess.run(review, env=env, capture_output=True, text=True, timeout=60)
        assert _one_line(typo) == (f"permit-ocr review: no bucket 'permit-ocr-dem' at {env['OSS_ENDPOINT']} "
                                   "(SOURCE_BUCKETS names permit-ocr-demo)")
    stopped = subprocess.run(review, env=env, capture_output=True, text=True, timeout=60)
    assert _one_line(stopped).endswith(f'the stack is stopped; serve it again with `eval "$(permit-ocr stack --root '
                                       f'{root} --detach)"`')
    bare = {k: v for k, v in env.items() if not k.startswith(("OSS_", "ALIBABA_CLOUD_", "PERMIT_OCR_"))}
    none = subprocess.run(review, env=bare, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    line = _one_line(none)
    assert 'eval "$(permit-ocr stack --root var/run --detach)"' in line and "FC_" not in line


def test_review_of_an_mns_only_deployment_says_there_is_nothing_stored_to_review(
        stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in {**stack.env(), "SINKS": "mns"}.items():
        monkeypatch.setenv(name, value)
    assert main(["review", "--bucket", "permit-ocr-demo", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "SINKS=mns stores no result documents" in err and len(err.strip().splitlines()) == 1
