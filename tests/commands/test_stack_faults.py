"""``permit-ocr stack --faults FILE``: the file is validated before anything serves (a bad rule: one line naming
the rule index and field, exit 2), the active rules are listed, each hit is logged without the object key, and
a stack already serving the root is never silently reused with other rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import alibabacloud_oss_v2 as oss

CLI = [sys.executable, "-m", "permit_ocr_local.cli"]


def stack(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "stack", "--root", str(root), "--ocr-backend", "truth", *args],
                          capture_output=True, text=True, timeout=60)


def test_a_bad_rule_is_refused_at_start_up_in_one_line_naming_the_rule_and_field(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps([{"service": "oss", "status": 503},
                                  {"service": "mns", "operation": "PublishMessage", "status": 302}]))
    ran = stack(tmp_path / "root", "--faults", str(faults), "--detach")
    assert ran.returncode == 2 and ran.stdout == ""
    assert ran.stderr.splitlines() == [f"permit-ocr: --faults {faults}: rule 1, field 'status': must be an HTTP "
                                       "error status 400..599, not 302"]
    assert not (tmp_path / "root" / ".stack" / "pid").exists()  # nothing was started


def test_a_fault_file_that_is_missing_or_not_json_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("[{'service': 'oss'}]")
    for path, says in ((tmp_path / "missing.json", "cannot read"), (broken, "is not JSON")):
        ran = stack(tmp_path / "root", "--faults", str(path))
        assert ran.returncode == 2 and len(ran.stderr.splitlines()) == 1 and says in ran.stderr, ran.stderr


def test_a_detached_stack_lists_its_rules_applies_them_and_logs_each_hit(tmp_path: Path) -> None:
    root = tmp_path / "root"
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps([{"service": "oss", "operation": "GetObject", "key": "private/*", "status": 403,
                                   "code": "AccessDenied", "note": "a prefix the role may not read"}]))
    ran = stack(root, "--faults", str(faults), "--detach")
    try:
        assert ran.returncode == 0, ran.stderr
        assert all(line.startswith("export ") for line in ran.stdout.splitlines())  # eval-able as before
        assert "#0 oss GetObject key=private/*: answer 403 AccessDenied  # a prefix the role may not read" \
            in ran.stderr
        env = {k: v.strip("'") for k, v in (line.removeprefix("export ").split("=", 1)
                                             for line in ran.stdout.splitlines())}
        cfg = oss.config.load_default()
        cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
            env["ALIBABA_CLOUD_ACCESS_KEY_ID"], env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
            env["ALIBABA_CLOUD_SECURITY_TOKEN"])
        cfg.region, cfg.endpoint, cfg.retry_max_attempts = env["OSS_REGION"], env["OSS_ENDPOINT"], 1
        client = oss.Client(cfg)
        for key in ("private/张三 H10387877.jpg", "public/a.jpg"):
            client.put_object(oss.PutObjectRequest(bucket="permit-ocr-demo", key=key, body=b"x"))
        try:
            client.get_object(oss.GetObjectRequest(bucket="permit-ocr-demo", key="private/张三 H10387877.jpg"))
            raise AssertionError("the rule did not apply")
        except oss.exceptions.OperationError as exc:
            assert (exc.unwrap().status_code, exc.unwrap().code) == (403, "AccessDenied")
        client.get_object(oss.GetObjectRequest(bucket="permit-ocr-demo", key="public/a.jpg"))

        again = stack(root, "--faults", str(faults), "--detach")  # a new shell, new rules: not a silent reuse
        assert again.returncode == 1 and "already serves" in again.stderr and again.stdout == ""
    finally:
        subprocess.run([*CLI, "stack", "--root", str(root), "--stop"], timeout=30, check=False)
    log = (root / ".stack" / "stack.log").read_text()
    assert "permit-ocr: fault rule #0 hit 1: oss GetObject" in log
    assert "H10387877" not in log and "张三" not in log  # keys can hold personal data: never logged
