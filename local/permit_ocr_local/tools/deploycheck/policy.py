"""What s.yaml implies outside FC: the function role's least-privilege RAM policy and the output bucket's
lifecycle rule, derived from the same resolved file so they cannot drift from the deployment."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from permit_ocr.config import load_config
from permit_ocr.layout import MARKER_RETENTION_DAYS, MARKERS_PREFIX, OVERLONG_PREFIX, REVIEWS_PREFIX, SHADOW_PREFIX
from permit_ocr_local.fcruntime.deployment import (
    CHECK_ACCOUNT_ID,
    environment,
    function_resource,
    parse_triggers,
    resolve,
)

from .checks import _DEST_ARN_RE

POLICY_ACCOUNT_ID: Final = "*"  # rendered policies match any account unless --account-id is given
_MNS_TOPIC_DEST_RE = re.compile(r"^/topics/([A-Za-z0-9-]+)/messages$")


def _minimal(patterns: Iterable[str]) -> list[str]:
    """Sorted unique resource patterns, minus those another '...*' pattern already covers."""
    uniq = sorted(set(patterns))
    return [p for p in uniq if not any(o != p and o.endswith("*") and p.startswith(o[:-1]) for o in uniq)]


def _minimal_suffixes(*suffixes: str) -> list[str]:
    """Drop a suffix another one already covers: '*.json' includes '*.error.json'."""
    uniq = list(dict.fromkeys(suffixes))
    return [s for s in uniq if not any(o != s and s.endswith(o) for o in uniq)]


def render_policy(doc: Mapping[str, Any], account_id: str = POLICY_ACCOUNT_ID,
                  env_overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The least-privilege RAM policy of the function role, derived from s.yaml (the one source of truth).

    What the function does with OSS (function/permit_ocr): GetObject (incl. HEAD and the signed URL OCR
    fetches) on uploads; HEAD/GET of its outputs (done-check, redelivery) and of its version markers;
    PutObject of results, error records (also digest-named ones for over-long keys), receipts and markers;
    DeleteObject of the other outcome of a key when a new one replaces it; ListObjects restricted by prefix to
    the outputs of an image (one listing shows the image's ETag and both outputs before a write). With the engine
    function (OCR_BACKEND=engine|cascade, SHADOW_RATE): fc:InvokeFunction on that one function and, for shadow
    mode, PutObject of the comparison records; no OCR action when the engine alone answers.
    """
    resolved, _ = resolve(doc, account_id)
    _name, props = function_resource(resolved)
    cfg = load_config({k: str(v) for k, v in environment(props, env_overrides).items()})
    triggers, _ = parse_triggers(props)
    region = str(props.get("region"))

    def outputs(*suffixes: str) -> list[str]:
        return [f"acs:oss:*:*:{cfg.output_bucket_for(t.bucket)}/{cfg.output_prefix_for(t.bucket)}{t.prefix}*{s}"
                for t in triggers for s in _minimal_suffixes(*suffixes)]

    uploads = [f"acs:oss:*:*:{t.bucket}/{t.prefix}*" for t in triggers]
    all_outputs = outputs(cfg.result_suffix, cfg.error_suffix)
    out_buckets = sorted({cfg.output_bucket_for(t.bucket) for t in triggers})
    markers = [f"acs:oss:*:*:{b}/{MARKERS_PREFIX}*" for b in out_buckets]
    shadow = [f"acs:oss:*:*:{b}/{SHADOW_PREFIX}*" for b in out_buckets] if cfg.shadow_rate > 0 else []
    overlong = [f"acs:oss:*:*:{b}/{OVERLONG_PREFIX}*" for b in out_buckets]
    # the outputs' prefixes, and the images' own (the fence lists an image's key to see its current version)
    listed = sorted({f"{cfg.output_prefix_for(t.bucket)}{t.prefix}*" for t in triggers} | {f"{OVERLONG_PREFIX}*"}
                    | {f"{t.prefix}*" for t in triggers})
    topics = [cfg.mns_topic] if "mns" in cfg.sinks and cfg.mns_topic else []
    dest = str(((((props.get("asyncInvokeConfig") or {}).get("destinationConfig") or {})
                 .get("onFailure") or {}).get("destination")) or "")
    m = _DEST_ARN_RE.match(dest)
    if m and m.group(1) == "mns" and (tm := _MNS_TOPIC_DEST_RE.match(m.group(3))):
        topics.append(tm.group(1))
    statements: list[dict[str, Any]] = []
    if triggers:
        statements += [
            {"Effect": "Allow", "Action": ["oss:GetObject"], "Resource": _minimal(uploads + all_outputs + markers
                                                                                  + overlong)},
            {"Effect": "Allow", "Action": ["oss:PutObject"], "Resource": _minimal(all_outputs + markers + overlong
                                                                                  + shadow)},
            # one outcome per key: a result replaces the key's error record, an error record its stale result
            {"Effect": "Allow", "Action": ["oss:DeleteObject"], "Resource": _minimal(all_outputs + overlong)},
            {"Effect": "Allow", "Action": ["oss:ListObjects"],
             "Resource": [f"acs:oss:*:*:{b}" for b in sorted({*out_buckets, *(t.bucket for t in triggers)})],
             "Condition": {"StringLike": {"oss:Prefix": listed}}},
            # the start-up check: claims need an output bucket without versioning (forbid-overwrite is ignored there)
            {"Effect": "Allow", "Action": ["oss:GetBucketVersioning"],
             "Resource": [f"acs:oss:*:*:{b}" for b in out_buckets]},
        ]
    if cfg.ocr_backend != "engine":
        statements.append({"Effect": "Allow", "Action": ["ocr:RecognizeExitEntryPermitToMainland"],
                           "Resource": ["*"]})
    if cfg.uses_engine:  # that one function, nothing else (FC 3.0's resource: acs:fc:<region>:<uid>:functions/<name>)
        statements.append({"Effect": "Allow", "Action": ["fc:InvokeFunction"],
                           "Resource": [f"acs:fc:{region}:{account_id}:functions/{cfg.engine_function}"]})
    if topics:
        # the topic and its /messages path: PublishMessage is POST /topics/<name>/messages
        resources = [f"acs:mns:{region}:{account_id}:/topics/{n}{tail}"
                     for n in dict.fromkeys(topics) for tail in ("", "/messages")]
        statements.append({"Effect": "Allow", "Action": ["mns:PublishMessage"], "Resource": resources})
    return {"Version": "1", "Statement": statements}


# bookkeeping that may expire: version markers (locks: the stored outcome is the done record, so a marker gone
# costs nothing) and reviewers' claims (they only settle a race of two saves, seconds long); overlong-key error
# records are outcomes and stay
EXPIRING: Final = (("permit-ocr-version-markers", MARKERS_PREFIX), ("permit-ocr-review-claims", REVIEWS_PREFIX))


def render_lifecycle(doc: Mapping[str, Any], env_overrides: Mapping[str, str] | None = None,
                     days: int = MARKER_RETENTION_DAYS) -> dict[str, str]:
    """Output bucket -> the PutBucketLifecycle XML that expires the function's version markers and the review
    claims (and nothing else) after ``days``. Apply it with the console, ossutil or the SDK; it replaces the
    bucket's rules, so merge it into any rules the bucket already has."""
    resolved, _ = resolve(doc, CHECK_ACCOUNT_ID)
    _name, props = function_resource(resolved)
    cfg = load_config({k: str(v) for k, v in environment(props, env_overrides).items()})
    triggers, _ = parse_triggers(props)
    rules = "".join(f"  <Rule>\n    <ID>{rule_id}</ID>\n    <Prefix>{prefix}</Prefix>\n    <Status>Enabled</Status>\n"
                    f"    <Expiration>\n      <Days>{days}</Days>\n    </Expiration>\n  </Rule>\n"
                    for rule_id, prefix in EXPIRING)
    xml = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LifecycleConfiguration>\n{rules}</LifecycleConfiguration>\n"
    return {b: xml for b in sorted({cfg.output_bucket_for(t.bucket) for t in triggers})}


def policy_json(policy: Mapping[str, Any]) -> str:
    return json.dumps(policy, indent=2, ensure_ascii=False) + "\n"
