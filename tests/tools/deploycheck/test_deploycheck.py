"""`permit-ocr check-config`: passes on s.yaml, fails with the right codes on crafted bad variants; the policy."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from permit_ocr.config import load_config
from permit_ocr.layout import MARKER_RETENTION_DAYS, MARKERS_PREFIX, OVERLONG_PREFIX, REVIEWS_PREFIX
from permit_ocr_local import cli
from permit_ocr_local.fcruntime import deployment
from permit_ocr_local.fcruntime.deployment import Finding, Trigger
from permit_ocr_local.tools import deploycheck

ROOT = Path(__file__).resolve().parents[3]
S_YAML = ROOT / "s.yaml"
BUCKET, PREFIX = "permit-ocr-demo", "uploads/"
EXPLICIT = list(deploycheck.RECOMMENDED_EVENTS)


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return deployment.load_s_yaml(S_YAML)


def props_of(doc: dict[str, Any]) -> dict[str, Any]:
    return deployment.function_resource(doc)[1]


def variant(base: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    change(doc)
    return doc


def one_trigger(suffix: str, prefix: str = "${vars.prefix}", bucket: str = "${vars.bucket}",
                events: list[str] | None = None, name: str = "oss-any") -> dict[str, Any]:
    return {
        "triggerName": name, "triggerType": "oss",
        "sourceArn": 'acs:oss:${vars.region}:${config("AccountID")}:' + bucket,
        "invocationRole": "${vars.triggerRoleArn}",
        "triggerConfig": {"events": events or EXPLICIT, "filter": {"key": {"prefix": prefix, "suffix": suffix}}},
    }


def set_triggers(*triggers: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        props_of(doc)["triggers"] = list(triggers)
    return change


def set_vars(**values: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["vars"].update(values)
    return change


def set_props(**values: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        props_of(doc).update(values)
    return change


def errors(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings if f.level == "error"}


def check(doc: dict[str, Any], **env: str) -> list[Finding]:
    return deploycheck.check_deployment(doc, env)


# --- the real s.yaml ------------------------------------------------------------------------------------------


def test_real_s_yaml_passes_without_warnings(base: dict[str, Any]) -> None:
    findings = check(base)
    assert [f for f in findings if f.level != "ok"] == []
    assert {"runtime", "memory", "timeout", "config", "trigger-events", "output-loop"} <= {f.code for f in findings}


def test_cli_passes_on_s_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", str(S_YAML)]) == 0
    out = capsys.readouterr().out
    assert "ok    output-loop" in out and out.rstrip().endswith("PASS")


def test_cli_fails_with_a_fix_on_a_bad_env(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", str(S_YAML), "--env", "WORKERS=0", "--env", "SINKS=oss,mns",
                     "--env", "MNS_TOPIC="]) == 1
    out = capsys.readouterr().out
    assert "error config" in out and "WORKERS: must be between 1 and 32" in out
    assert "error mns-topic" in out and "fix: set vars.mnsTopic" in out
    assert "MNS_TOPIC: is required" not in out  # reported once, by the dedicated check
    assert out.rstrip().endswith("FAIL")


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "s.yaml").write_text("edition: 3.0.0\nresources: {}\n", encoding="utf-8")
    assert cli.main(["check-config", str(tmp_path / "s.yaml")]) == 1
    assert "error resource" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["check-config", str(S_YAML), "--env", "NOEQUALS"])


# --- loops ------------------------------------------------------------------------------------------------------


def test_empty_suffix_with_results_beside_images_is_a_loop(base: dict[str, Any]) -> None:
    findings = check(variant(base, set_triggers(one_trigger(""))))
    assert "output-loop" in errors(findings)
    loop = next(f for f in findings if f.code == "output-loop")
    assert "uploads/permit.jpg.json" in loop.message and "OUTPUT_PREFIX" in loop.fix


@pytest.mark.parametrize("change", [
    set_vars(outputPrefix="results/"),  # outputs outside the trigger prefix
    set_vars(outputBucket="permit-ocr-results"),  # another bucket without triggers
])
def test_empty_suffix_is_safe_when_outputs_leave_the_prefix(base: dict[str, Any],
                                                             change: Callable[[dict[str, Any]], None]) -> None:
    doc = variant(base, set_triggers(one_trigger("")))
    change(doc)
    findings = check(doc)
    assert errors(findings) == set()
    assert {f.code for f in findings if f.level == "warn"} == {"trigger-suffix"}  # the documented trade-off


def test_output_prefix_inside_the_trigger_prefix_is_still_a_loop(base: dict[str, Any]) -> None:
    # uploads/out/uploads/x.jpg.json is still under the trigger prefix uploads/
    doc = variant(base, set_triggers(one_trigger("")))
    doc["vars"]["outputPrefix"] = "uploads/out/"
    assert "output-loop" in errors(check(doc))


def test_output_prefix_that_contains_the_uploads_skips_everything(base: dict[str, Any]) -> None:
    findings = check(variant(base, set_vars(outputPrefix="uploads/")))
    assert errors(findings) == {"output-prefix"}


@pytest.mark.parametrize("suffix", [".json", "n", "json", ".error.json"])
def test_suffixes_matching_outputs_are_loops(base: dict[str, Any], suffix: str) -> None:
    # a trigger on the outputs' suffix next to an image trigger: every result write fires it again
    codes = errors(check(variant(base, set_triggers(one_trigger(".jpg", name="jpg"), one_trigger(suffix)))))
    assert {"output-loop", "trigger-suffix"} <= codes
    # alone, it never fires for an image, so nothing is written and nothing loops (but nothing works either)
    alone = errors(check(variant(base, set_triggers(one_trigger(suffix)))))
    assert alone == {"trigger-suffix"}


def test_output_bucket_that_is_another_watched_bucket(base: dict[str, Any]) -> None:
    doc = variant(base, set_triggers(one_trigger(".jpg"), one_trigger("", bucket="permit-ocr-out", name="out")))
    doc["vars"]["outputBucket"] = "permit-ocr-out"
    props_of(doc)["environmentVariables"]["SOURCE_BUCKETS"] = "${vars.bucket},permit-ocr-out"
    refused = [f for f in check(doc) if f.level == "error"]  # two sources share one output bucket: keys collide
    assert refused and any("OUTPUT_PREFIX" in f.message and "{bucket}" in f.message for f in refused), refused
    props_of(doc)["environmentVariables"]["OUTPUT_PREFIX"] = "ocr/{bucket}/"
    assert "output-loop" not in errors(check(doc))  # outputs under ocr/ are the function's own: skipped


def test_trigger_that_listens_only_to_multipart_is_not_fired_by_result_puts(base: dict[str, Any]) -> None:
    t = one_trigger("", events=["oss:ObjectCreated:CompleteMultipartUpload"])
    findings = check(variant(base, set_triggers(t)))
    assert "output-loop" not in errors(findings)


def cfg(**env: str) -> Any:
    return load_config({"SOURCE_BUCKETS": BUCKET, **env})


def trig(prefix: str, suffix: str, events: tuple[str, ...] = tuple(EXPLICIT)) -> Trigger:
    return Trigger("t", BUCKET, "cn-hangzhou", prefix, suffix, events)


@pytest.mark.parametrize(("src", "dst", "env", "expected"), [
    (trig(PREFIX, ".jpg"), trig(PREFIX, ".jpg"), {}, None),
    (trig(PREFIX, ".jpg"), trig(PREFIX, ""), {}, "uploads/permit.jpg"),
    (trig(PREFIX, ""), trig(PREFIX, ""), {}, "uploads/permit.jpg"),  # first IMAGE_SUFFIXES entry
    (trig(PREFIX, ""), trig(PREFIX, ""), {"OUTPUT_PREFIX": "out/"}, None),
    (trig("", ""), trig("", ""), {"OUTPUT_PREFIX": "out/"}, "permit.jpg"),  # out/permit.jpg.json fires it
    (trig("", ".png"), trig("out/", ""), {"OUTPUT_PREFIX": "out/"}, "permit.png"),
    (trig("a/", ".jpg"), trig("a/b/", "n"), {}, "a/b/permit.jpg"),
    (trig("a/", ".jpg"), trig("b/", ""), {}, None),
    (trig(PREFIX, ".jpg"), trig(PREFIX, ".jpg.json"), {}, "uploads/permit.jpg"),
    (trig(PREFIX, ".JPG"), trig(PREFIX, ".JPG.json"), {}, "uploads/permit.JPG"),
    (trig(PREFIX, "g"), trig(PREFIX, "pg.ok"), {"RESULT_SUFFIX": ".ok"}, "uploads/permit.jpg"),
    (trig(PREFIX, ".png"), trig(PREFIX, ".jpg.json"), {}, None),
])
def test_loop_example(src: Trigger, dst: Trigger, env: dict[str, str], expected: str | None) -> None:
    c = cfg(**env)
    assert deploycheck.loop_example(src, dst, c.output_prefix, c.result_suffix, c) == expected


# --- events, buckets, suffixes, counts ---------------------------------------------------------------------


@pytest.mark.parametrize("event", ["oss:ObjectCreated:*", "oss:ObjectCreated:UploadPart",
                                   "oss:ObjectCreated:InitiateMultipartUpload"])
def test_wildcard_and_part_events_fail(base: dict[str, Any], event: str) -> None:
    findings = check(variant(base, set_triggers(one_trigger(".jpg", events=[event]))))
    assert "trigger-events" in errors(findings)
    assert "explicitly" in next(f for f in findings if f.code == "trigger-events").fix


def test_removal_events_fail_and_missing_multipart_warns(base: dict[str, Any]) -> None:
    bad = check(variant(base, set_triggers(one_trigger(".jpg", events=["oss:ObjectRemoved:DeleteObject"]))))
    assert "trigger-events" in errors(bad)
    partial = check(variant(base, set_triggers(one_trigger(".jpg", events=["oss:ObjectCreated:PutObject"]))))
    assert "trigger-events" not in errors(partial)
    assert any(f.code == "trigger-events" and f.level == "warn" for f in partial)


def test_trigger_bucket_outside_source_buckets(base: dict[str, Any]) -> None:
    assert "trigger-bucket" in errors(check(variant(base, set_triggers(one_trigger(".jpg", bucket="other-b")))))


def test_trigger_suffix_not_an_image(base: dict[str, Any]) -> None:
    findings = check(variant(base, set_triggers(one_trigger(".docx"))))
    assert "trigger-suffix" in errors(findings) and "output-loop" not in errors(findings)


def test_uncovered_image_suffix_warns(base: dict[str, Any]) -> None:
    findings = check(variant(base, set_triggers(one_trigger(".jpg"))))
    assert errors(findings) == set()
    warn = next(f for f in findings if f.code == "trigger-suffix")
    assert warn.level == "warn" and ".png" in warn.message


def test_too_many_and_overlapping_triggers(base: dict[str, Any]) -> None:
    many = [one_trigger(".jpg", prefix=f"u{i}/", name=f"t{i}") for i in range(11)]
    assert "trigger-count" in errors(check(variant(base, set_triggers(*many))))
    overlap = set_triggers(one_trigger(".jpg", name="a"), one_trigger(".jpg", prefix="uploads/x/", name="b"))
    assert "trigger-overlap" in errors(check(variant(base, overlap)))
    same_name = set_triggers(one_trigger(".jpg", name="a"), one_trigger(".png", name="a"))
    assert "trigger-name" in errors(check(variant(base, same_name)))


def test_bad_arns(base: dict[str, Any]) -> None:
    t = one_trigger(".jpg")
    t["sourceArn"] = "acs:oss:cn-hangzhou:bucket"
    assert "trigger-arn" in errors(check(variant(base, set_triggers(t))))
    assert "role" in errors(check(variant(base, set_vars(roleArn="permit-ocr-fc"))))
    assert "trigger-role" in errors(check(variant(base, set_vars(triggerRoleArn="oss-role"))))


# --- function settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "code"), [
    (set_props(timeout=30), "timeout"),
    (set_props(timeout=None), "timeout"),
    (set_props(memorySize=100), "memory"),
    (set_props(memorySize=200), "memory"),
    (set_props(runtime="python3.9"), "runtime"),
    (set_props(instanceConcurrency=10), "instance-concurrency"),
    (set_vars(region="cn-shanghai", bucket="${vars.nothing}"), "unresolved"),
    (set_vars(workers=4), "env-type"),  # an unquoted number in YAML
    (set_vars(signedUrlExpires="604801"), "signed-url-expires"),
    (set_vars(sinks="mns", mnsTopic=""), "mns-topic"),
    (set_vars(resultSuffix=".jpg"), "config"),
])
def test_bad_settings_fail(base: dict[str, Any], change: Callable[[dict[str, Any]], None], code: str) -> None:
    assert code in errors(check(variant(base, change)))


def test_timeout_arithmetic(base: dict[str, Any]) -> None:
    c = cfg()
    assert deploycheck.backoff_budget_s(4) == pytest.approx(0.4 + 0.8 + 1.6)
    assert deploycheck.record_budget_s(c) == pytest.approx(4 * (5 + 10) + 2.8 + deploycheck.OSS_IO_BUDGET_S)
    assert errors(check(base, OCR_READ_TIMEOUT_MS="30000")) == {"timeout"}  # 4 x 35 s > 120 s
    assert errors(check(base, OCR_READ_TIMEOUT_MS="30000", OCR_MAX_ATTEMPTS="2")) == set()


def test_env_override_of_unknown_name_warns(base: dict[str, Any]) -> None:
    findings = check(base, OUTPUT_PREFX="results/")
    assert errors(findings) == set()
    assert any(f.code == "env-unknown" and "OUTPUT_PREFX" in f.message for f in findings)
    assert "env-reserved" in errors(check(base, FC_REGION="cn-hangzhou"))


def test_short_signed_url_warns(base: dict[str, Any]) -> None:
    findings = check(base, SIGNED_URL_EXPIRES="30")
    assert any(f.code == "signed-url-expires" and f.level == "warn" for f in findings)


# --- the policy --------------------------------------------------------------------------------------------


def actions(policy: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow"
        assert "Condition" not in st or st["Action"] == ["oss:ListObjects"]  # listings only, by prefix
        for a in st["Action"]:
            out.setdefault(a, []).extend(st["Resource"])
    return out


def test_committed_policy_is_rendered_from_s_yaml(base: dict[str, Any]) -> None:
    committed = json.loads((ROOT / "deploy" / "ram-policy.json").read_text(encoding="utf-8"))
    assert committed == deploycheck.render_policy(base), (
        "deploy/ram-policy.json is stale: permit-ocr check-config s.yaml --print-policy > deploy/ram-policy.json")


def test_policy_grants_only_the_listed_actions(base: dict[str, Any]) -> None:
    got = actions(deploycheck.render_policy(base))
    markers, overlong = f"acs:oss:*:*:{BUCKET}/.permit-ocr/markers/*", f"acs:oss:*:*:{BUCKET}/.permit-ocr/overlong/*"
    assert got == {
        "oss:GetObject": [markers, overlong, f"acs:oss:*:*:{BUCKET}/{PREFIX}*"],
        "oss:PutObject": [markers, overlong, f"acs:oss:*:*:{BUCKET}/{PREFIX}*.json"],
        "oss:DeleteObject": [overlong, f"acs:oss:*:*:{BUCKET}/{PREFIX}*.json"],
        "oss:ListObjects": [f"acs:oss:*:*:{BUCKET}"],
        "oss:GetBucketVersioning": [f"acs:oss:*:*:{BUCKET}"],  # the start-up check: claims need no versioning
        "ocr:RecognizeExitEntryPermitToMainland": ["*"],
        "mns:PublishMessage": ["acs:mns:cn-hangzhou:*:/topics/permit-ocr-failures",
                               "acs:mns:cn-hangzhou:*:/topics/permit-ocr-failures/messages"],
    }


def test_policy_follows_sinks_output_bucket_and_account(base: dict[str, Any]) -> None:
    doc = variant(base, set_vars(sinks="oss,mns", outputBucket="permit-ocr-out", outputPrefix="results/"))
    got = actions(deploycheck.render_policy(doc, "1234567890123456"))
    out = "acs:oss:*:*:permit-ocr-out"
    assert got["oss:PutObject"] == [f"{out}/.permit-ocr/markers/*", f"{out}/.permit-ocr/overlong/*",
                                    f"{out}/results/uploads/*.json"]
    assert got["oss:GetObject"] == ["acs:oss:*:*:permit-ocr-demo/uploads/*", f"{out}/.permit-ocr/markers/*",
                                    f"{out}/.permit-ocr/overlong/*", f"{out}/results/uploads/*.json"]
    # the outputs' listing, and the image's own key (listed, not read: a policy denying the image still lets
    # the function leave its record)
    assert got["oss:ListObjects"] == ["acs:oss:*:*:permit-ocr-demo", out]
    assert "acs:mns:cn-hangzhou:1234567890123456:/topics/permit-ocr-results/messages" in got["mns:PublishMessage"]
    assert not any("*" in a for a in got)


def test_print_policy_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", str(S_YAML), "--print-policy", "--account-id", "42"]) == 0
    policy = json.loads(capsys.readouterr().out)
    assert "acs:mns:cn-hangzhou:42:/topics/permit-ocr-failures" in actions(policy)["mns:PublishMessage"]


def test_trust_policy_is_function_compute_only() -> None:
    trust = json.loads((ROOT / "deploy" / "trust-policy.json").read_text(encoding="utf-8"))
    [st] = trust["Statement"]
    assert st == {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": ["fc.aliyuncs.com"]}}


def test_ocr_quota_check_warns_when_instances_times_qps_exceed_the_quota() -> None:
    from permit_ocr.config import load_config
    from permit_ocr_local.tools.deploycheck import check_ocr_quota

    cfg = load_config({"SOURCE_BUCKETS": "permit-ocr-demo", "OCR_QPS": "4"})
    assert check_ocr_quota({"concurrencyConfig": {"reservedConcurrency": 5}}, cfg)[0].level == "warn"
    assert check_ocr_quota({"concurrencyConfig": {"reservedConcurrency": 2}}, cfg)[0].level == "ok"
    assert check_ocr_quota({}, cfg)[0].level == "warn"


def test_the_lifecycle_rule_expires_markers_and_review_claims_and_never_an_outcome(base: dict[str, Any]) -> None:
    rendered = deploycheck.render_lifecycle(base, {"OUTPUT_BUCKET": "results-bucket"}, days=7)
    assert list(rendered) == ["results-bucket"]  # the rule belongs where the bookkeeping is written
    rules = ET.fromstring(rendered["results-bucket"].encode()).findall("Rule")
    prefixes = {r.findtext("Prefix") for r in rules}
    assert prefixes == {MARKERS_PREFIX, REVIEWS_PREFIX} and OVERLONG_PREFIX not in prefixes
    assert {r.findtext("Expiration/Days") for r in rules} == {"7"}
    assert {r.findtext("Status") for r in rules} == {"Enabled"}
    assert len({r.findtext("ID") for r in rules}) == len(rules)  # OSS refuses two rules with one ID
    default = deploycheck.render_lifecycle(base)
    assert all(f"<Days>{MARKER_RETENTION_DAYS}</Days>" in xml for xml in default.values())
