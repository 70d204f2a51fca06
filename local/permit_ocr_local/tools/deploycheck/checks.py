"""The checks, each a pure function returning ``Finding`` objects, and ``check_deployment`` that runs them in
report order."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from permit_ocr.config import MAX_PRESIGN_SECONDS, SPEC, Config, ConfigError, load_config
from permit_ocr_local.fcruntime.deployment import (
    _ROLE_ARN_RE,
    CHECK_ACCOUNT_ID,
    DeployCheckError,
    Finding,
    Trigger,
    environment,
    function_resource,
    ok,
    parse_triggers,
    resolve,
)

from .budget import budget_words, check_batch, paid_budget_s, record_budget_s
from .engine import check_engine
from .events import OK_EVENTS, OSS_PREFIX, PARTIAL_EVENTS, RECOMMENDED_EVENTS, WARN_EVENTS
from .loops import check_output_loops, longer_suffix

RUNTIMES: Final = ("python3.10", "python3.12")
MAX_TRIGGERS_PER_BUCKET: Final = 10
ENV_MAX_BYTES: Final = 4096

_DEST_ARN_RE = re.compile(r"^acs:(mns|fc|eventbridge|rocketmq):([a-z0-9-]+):[0-9]*:(.+)$")








def check_runtime(props: Mapping[str, Any]) -> list[Finding]:
    rt = props.get("runtime")
    if rt not in RUNTIMES:
        return [Finding("error", "runtime", f"runtime {rt!r} is not supported",
                        "set runtime: python3.12 (python3.10 also works)")]
    findings = [ok("runtime", f"runtime {rt}")]
    if props.get("instanceConcurrency") not in (None, 1):
        findings.append(Finding("error", "instance-concurrency", "instanceConcurrency > 1 is not supported by "
                                "built-in runtimes in FC 3.0", "remove instanceConcurrency"))
    init = ((props.get("instanceLifecycleConfig") or {}).get("initializer") or {}).get("handler")
    if not init:
        findings.append(Finding("warn", "initializer", "no initializer: a bad configuration surfaces only on "
                                "the first event", "set instanceLifecycleConfig.initializer.handler: "
                                "index.initialize"))
    return findings


BUILD_COMMANDS: Final = ("make package", "bench/package.py")
PACKAGE_DIR: Final = "./dist/function"


def check_build(resource: Mapping[str, Any]) -> list[Finding]:
    """`s deploy` must build the package it uploads: a pre-deploy action runs the build, and code is its output."""
    props = resource.get("props") or {}
    actions = (resource.get("actions") or {}).get("pre-deploy") or []
    runs = [str(a.get("run") or "") for a in actions if isinstance(a, dict)]
    findings: list[Finding] = []
    if not any(cmd in r for r in runs for cmd in BUILD_COMMANDS):
        findings.append(Finding("error", "build", "no pre-deploy action builds the package: `s deploy` would "
                                f"upload {props.get('code')} as it happens to be (stale, or missing)",
                                "add actions: {pre-deploy: [{run: make package, path: ./}]} to the resource"))
    if str(props.get("code")).rstrip("/") != PACKAGE_DIR:
        findings.append(Finding("error", "build", f"code is {props.get('code')!r}, not the build output "
                                f"{PACKAGE_DIR} (function/ alone lacks the vendored SDKs)", f"set code: {PACKAGE_DIR}"))
    return findings or [ok("build", f"pre-deploy runs `{runs[0]}`; code: {PACKAGE_DIR}")]


def check_memory(props: Mapping[str, Any]) -> list[Finding]:
    mem = props.get("memorySize")
    if mem is None:
        return [Finding("warn", "memory", "memorySize is unset (fc3 default 512 MB)",
                        "set memorySize: 128 (see `make bench`)")]
    if not isinstance(mem, int) or isinstance(mem, bool) or mem % 64 or not 128 <= mem <= 32768:
        return [Finding("error", "memory", f"memorySize {mem!r} must be an integer multiple of 64 in 128..32768",
                        "set memorySize: 128 (or another multiple of 64)")]
    findings = [ok("memory", f"memorySize {mem} MB")]
    cpu = props.get("cpu")
    if isinstance(cpu, int | float) and not 1 <= (mem / 1024) / cpu <= 4:
        findings.append(Finding("warn", "cpu-ratio", f"cpu {cpu} with {mem} MB: FC wants memory (GB) : vCPU "
                                "between 1 and 4", "remove cpu, or adjust it"))
    return findings


def check_timeout(props: Mapping[str, Any], cfg: Config) -> list[Finding]:
    need = record_budget_s(cfg)
    timeout = props.get("timeout")
    arithmetic = budget_words(cfg)
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        return [Finding("error", "timeout", f"timeout is {timeout!r} (fc3 default 3 s); one record needs "
                        f"{arithmetic}", f"set timeout: {math.ceil(need)} or more")]
    if timeout < need:
        return [Finding("error", "timeout", f"timeout {timeout} s is shorter than one record's worst case: "
                        f"{arithmetic}", f"raise timeout to >= {math.ceil(need)}, or lower "
                        "OCR_READ_TIMEOUT_MS / OCR_MAX_ATTEMPTS" + (" / ENGINE_TIMEOUT_MS" if cfg.ocr_backend != "api"
                                                                     else ""))]
    return [ok("timeout", f"timeout {timeout} s >= {arithmetic}")]


def check_env_vars(env: Mapping[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    unknown = sorted(set(env) - set(SPEC))
    missing = sorted(set(SPEC) - set(env))
    reserved = sorted(n for n in env if n.startswith("FC_"))
    not_str = sorted(n for n, v in env.items() if not isinstance(v, str))
    size = sum(len(str(n).encode()) + len(str(v).encode()) for n, v in env.items())
    if reserved:
        findings.append(Finding("error", "env-reserved", f"FC_* names are reserved by FC: {', '.join(reserved)}",
                                "rename or remove them (and never export FC_REGION where `s deploy` runs)"))
    if not_str:
        findings.append(Finding("error", "env-type", f"values must be strings: {', '.join(not_str)}",
                                "quote them in s.yaml (e.g. WORKERS: '4')"))
    if unknown:
        findings.append(Finding("warn", "env-unknown", f"not read by the function: {', '.join(unknown)}",
                                "check the spelling against function/permit_ocr/config.py SPEC"))
    if missing:
        findings.append(Finding("warn", "env-missing", f"unset, defaults apply: {', '.join(missing)}",
                                "list every SPEC name in environmentVariables"))
    if size > ENV_MAX_BYTES:
        findings.append(Finding("error", "env-size", f"environment variables take {size} bytes; FC allows "
                                f"{ENV_MAX_BYTES}", "shorten values"))
    non_ascii = sorted(n for n, v in env.items() if not str(v).isascii())
    if non_ascii:
        findings.append(Finding("warn", "env-ascii", f"non-ASCII values: {', '.join(non_ascii)}",
                                "FC documents printable ASCII values"))
    if not findings:
        findings.append(ok("env", f"{len(env)} variables, exactly config.SPEC, {size} bytes"))
    return findings


# problems reported by a dedicated check, so ConfigError does not repeat them
_DEDICATED: Final = {"SIGNED_URL_EXPIRES": "signed-url-expires", "MNS_TOPIC": "mns-topic"}


def check_signed_url(env: Mapping[str, Any]) -> list[Finding]:
    raw = str(env.get("SIGNED_URL_EXPIRES", SPEC["SIGNED_URL_EXPIRES"][0])).strip()
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if not 1 <= n <= MAX_PRESIGN_SECONDS:
        return [Finding("error", "signed-url-expires", f"SIGNED_URL_EXPIRES {raw!r} must be 1..{MAX_PRESIGN_SECONDS}"
                        " seconds (OSS V4 signatures expire within 7 days)",
                        "set SIGNED_URL_EXPIRES to a few minutes, e.g. 300")]
    return [ok("signed-url-expires", f"SIGNED_URL_EXPIRES {n} s")]


def check_mns(env: Mapping[str, Any], props: Mapping[str, Any]) -> list[Finding]:
    sinks = {s.strip().lower() for s in str(env.get("SINKS", "oss")).split(",")}
    findings: list[Finding] = []
    if "mns" in sinks and not str(env.get("MNS_TOPIC", "")).strip():
        findings.append(Finding("error", "mns-topic", "SINKS includes mns but MNS_TOPIC is empty",
                                "set vars.mnsTopic (MNS_TOPIC) or remove mns from SINKS"))
    dest = (((props.get("asyncInvokeConfig") or {}).get("destinationConfig") or {}).get("onFailure") or {})
    arn = str(dest.get("destination") or "")
    if not arn:
        findings.append(Finding("warn", "async-destination", "no asyncInvokeConfig onFailure destination: "
                                "events that fail after FC's retries are only logged",
                                "set destinationConfig.onFailure.destination: "
                                "acs:mns:${vars.region}::/topics/${vars.failureTopic}/messages"))
    elif not _DEST_ARN_RE.match(arn):
        findings.append(Finding("error", "async-destination", f"onFailure destination {arn!r} is not an ARN",
                                "use acs:mns:<region>::/topics/<name>/messages"))
    retries = (props.get("asyncInvokeConfig") or {}).get("maxAsyncRetryAttempts")
    if retries is None:
        findings.append(Finding("warn", "async-retries", "maxAsyncRetryAttempts unset (FC retries 3 times)",
                                "set maxAsyncRetryAttempts: 2 (transient errors are retried in-function)"))
    if not findings:
        findings.append(ok("async", f"sinks {','.join(sorted(sinks))}; onFailure -> {arn}; "
                           f"FC retries {retries}"))
    return findings


def check_config(env: Mapping[str, Any]) -> tuple[Config | None, list[Finding]]:
    try:
        cfg = load_config({k: str(v) for k, v in env.items()})
    except ConfigError as exc:
        return None, [
            Finding("error", "config", f"{name}: {why}", f"fix {name} in environmentVariables (or its var)")
            for name, why in sorted(exc.problems.items())
            if name not in _DEDICATED
        ]
    return cfg, [ok("config", "environmentVariables pass permit_ocr.config.load_config")]


def check_events(triggers: Sequence[Trigger]) -> list[Finding]:
    findings: list[Finding] = []
    for t in triggers:
        partial = [e for e in t.events if e in PARTIAL_EVENTS]
        other = [e for e in t.events if e not in (*PARTIAL_EVENTS, *OK_EVENTS, *WARN_EVENTS)]
        if partial:
            findings.append(Finding("error", "trigger-events", f"trigger {t.name}: {', '.join(partial)} fires "
                                    "before the upload completes or once per multipart part",
                                    "list " + ", ".join(RECOMMENDED_EVENTS) + " explicitly"))
        if other:
            findings.append(Finding("error", "trigger-events", f"trigger {t.name}: {', '.join(other)} does not "
                                    "create an object to read", "remove it"))
        for e in (e for e in t.events if e in WARN_EVENTS):
            findings.append(Finding("warn", "trigger-events", f"trigger {t.name}: {e} fires for incomplete or "
                                    "indirect objects", "remove it unless you need it"))
        absent = [e for e in RECOMMENDED_EVENTS if e not in t.events]
        if absent and not partial:
            findings.append(Finding("warn", "trigger-events", f"trigger {t.name}: uploads by "
                                    f"{', '.join(a.removeprefix(OSS_PREFIX) for a in absent)} are not seen",
                                    "add " + ", ".join(absent)))
    if not findings:
        findings.append(ok("trigger-events", f"{len(triggers)} trigger(s), explicit events: "
                           + ", ".join(e.removeprefix(OSS_PREFIX) for e in RECOMMENDED_EVENTS)))
    return findings


def check_trigger_sources(triggers: Sequence[Trigger], props: Mapping[str, Any], cfg: Config) -> list[Finding]:
    findings: list[Finding] = []
    if not triggers:
        return [Finding("warn", "triggers", "no OSS trigger: the function is only invoked by hand")]
    names = [t.name for t in triggers]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        findings.append(Finding("error", "trigger-name", f"duplicate trigger names: {', '.join(dup)}",
                                "give each trigger its own triggerName"))
    for t in triggers:
        if t.bucket not in cfg.source_buckets:
            findings.append(Finding("error", "trigger-bucket", f"trigger {t.name} is on bucket {t.bucket}, which "
                                    f"SOURCE_BUCKETS ({','.join(cfg.source_buckets)}) rejects",
                                    "add the bucket to SOURCE_BUCKETS or fix sourceArn"))
        if t.region != props.get("region"):
            findings.append(Finding("error", "trigger-region", f"trigger {t.name} is in {t.region}, the function "
                                    f"in {props.get('region')}", "OSS triggers must be in the function's region"))
    if cfg.region != props.get("region"):
        findings.append(Finding("error", "oss-region", f"OSS_REGION {cfg.region} differs from the function's "
                                f"region {props.get('region')}", "set OSS_REGION: ${vars.region}"))
    for bucket in sorted({t.bucket for t in triggers}):
        n = sum(t.bucket == bucket and t.kind == "oss" for t in triggers)
        if n > MAX_TRIGGERS_PER_BUCKET:
            findings.append(Finding("error", "trigger-count", f"{n} triggers on {bucket}; OSS allows "
                                    f"{MAX_TRIGGERS_PER_BUCKET} native triggers per bucket",
                                    "use the EventBridge variant (s.eventbridge.yaml): one rule, any suffix"))
    for i, a in enumerate(triggers):
        for b in triggers[i + 1 :]:
            if (a.bucket == b.bucket and set(a.events) & set(b.events)
                    and longer_suffix(a.suffix, b.suffix) is not None
                    and (a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix))):
                findings.append(Finding("error", "trigger-overlap", f"triggers {a.name} and {b.name} both fire "
                                        "for some keys (one upload, two invocations)",
                                        "make their prefixes or suffixes disjoint"))
    if not findings:
        buckets = ", ".join(sorted({t.bucket for t in triggers}))
        findings.append(ok("trigger-source", f"triggers on {buckets} (in SOURCE_BUCKETS, region "
                           f"{props.get('region')}), none overlapping"))
    return findings


def check_trigger_suffixes(triggers: Sequence[Trigger], cfg: Config) -> list[Finding]:
    findings: list[Finding] = []
    for t in triggers:
        if t.kind == "eventbridge":
            findings.append(ok("trigger-suffix", f"trigger {t.name} (EventBridge) fires for every key under "
                               f"{t.prefix!r}: the function reads IMAGE_SUFFIXES in any case (Photo.JPG too) "
                               "and skips other keys, one short invocation each"))
        elif t.suffix == "":
            findings.append(Finding("warn", "trigger-suffix", f"trigger {t.name} has an empty suffix: every "
                                    "upload under its prefix invokes the function, non-images only to be skipped",
                                    "prefer one trigger per image suffix"))
        elif not t.suffix.lower().endswith(cfg.image_suffixes):
            findings.append(Finding("error", "trigger-suffix", f"trigger {t.name} suffix {t.suffix!r} is not an "
                                    f"IMAGE_SUFFIXES entry: matching uploads invoke and are skipped",
                                    "use one of " + ",".join(cfg.image_suffixes) + " or extend IMAGE_SUFFIXES"))
    uncovered = [s for s in cfg.image_suffixes if not any(s.endswith(t.suffix) for t in triggers)]
    if uncovered and triggers:
        findings.append(Finding("warn", "trigger-suffix", f"no trigger for {', '.join(uncovered)}",
                                "add a trigger per suffix, or drop it from IMAGE_SUFFIXES"))
    if all(f.level == "ok" for f in findings) and not any(t.kind == "eventbridge" for t in triggers):
        findings.append(ok("trigger-suffix", "trigger suffixes = IMAGE_SUFFIXES (lower case; an upper-case "
                           ".JPG upload does not invoke: s.eventbridge.yaml reads any case)"))
    return findings


def check_signed_url_lifetime(cfg: Config) -> list[Finding]:
    need = paid_budget_s(cfg)
    if cfg.image_source == "url" and cfg.ocr_backend == "api" and cfg.signed_url_expires < need:
        return [Finding("warn", "signed-url-expires", f"SIGNED_URL_EXPIRES {cfg.signed_url_expires} s is shorter "
                        f"than the OCR retry budget {need:g} s: a late retry may get an expired URL",
                        f"raise SIGNED_URL_EXPIRES to >= {math.ceil(need)}")]
    return []


OCR_DEFAULT_QUOTA_QPS = 10  # RecognizeExitEntryPermitToMainland's default quota per account (ocr-api.md §13.1)


def check_ocr_quota(props: Mapping[str, Any], cfg: Config, quota_qps: float = OCR_DEFAULT_QUOTA_QPS) -> list[Finding]:
    """Every instance may start OCR_QPS calls per second; without a cap on instances, scale-out meets 429s."""
    cap = (props.get("concurrencyConfig") or {}).get("reservedConcurrency")
    if not isinstance(cap, int) or cap <= 0:
        return [Finding("warn", "ocr-quota", "no concurrencyConfig.reservedConcurrency: an upload burst scales "
                        f"past the OCR quota ({quota_qps:g} QPS) and is slowed by 429 retries",
                        f"set reservedConcurrency so that it x OCR_QPS <= {quota_qps:g}")]
    peak = cap * cfg.ocr_qps
    if peak > quota_qps:
        return [Finding("warn", "ocr-quota", f"{cap} instances x OCR_QPS {cfg.ocr_qps:g} = {peak:g} QPS exceeds the "
                        f"default OCR quota of {quota_qps:g} QPS", "lower OCR_QPS or reservedConcurrency, or raise "
                        "the quota")]
    return [ok("ocr-quota", f"{cap} instances x OCR_QPS {cfg.ocr_qps:g} = {peak:g} QPS <= quota {quota_qps:g}")]


def check_deployment(doc: Mapping[str, Any], env_overrides: Mapping[str, str] | None = None,
                     account_id: str = CHECK_ACCOUNT_ID) -> list[Finding]:
    """Every check, in report order. ``doc`` is the parsed (unresolved) s.yaml."""
    findings: list[Finding] = []
    if str(doc.get("edition")) != "3.0.0":
        findings.append(Finding("error", "edition", f"edition {doc.get('edition')!r}", "set edition: 3.0.0"))
    resolved, unresolved = resolve(doc, account_id)
    if unresolved:
        findings.append(Finding("error", "unresolved", f"cannot resolve {', '.join(sorted(set(unresolved)))}",
                                "define the var under vars:"))
    try:
        name, props = function_resource(resolved)
    except DeployCheckError as exc:
        return [*findings, Finding("error", "resource", str(exc), "declare one resource with component: fc3")]
    findings += check_build(resolved["resources"][name])
    env = environment(props, env_overrides)
    role = str(props.get("role") or "")
    if role and not _ROLE_ARN_RE.match(role):
        findings.append(Finding("error", "role", f"role {role!r} is not acs:ram::<uid>:role/<name>",
                                "set vars.roleArn to the function role's ARN"))
    findings += check_runtime(props) + check_memory(props) + check_env_vars(env)
    findings += check_signed_url(env) + check_mns(env, props)
    cfg, config_findings = check_config(env)
    findings += config_findings
    triggers, trigger_findings = parse_triggers(props)
    findings += trigger_findings + check_events(triggers)
    if cfg is None:
        findings.append(Finding("warn", "skipped", "timeout, trigger and loop checks need a valid configuration"))
        return findings
    findings += check_timeout(props, cfg) + check_batch(props, cfg) + check_signed_url_lifetime(cfg)
    findings += check_trigger_sources(triggers, props, cfg) + check_trigger_suffixes(triggers, cfg)
    findings += check_output_loops(triggers, cfg) + check_output_prefix(triggers, cfg) + check_ocr_quota(props, cfg)
    return findings + check_engine(resolved, props, cfg)


def failed(findings: Iterable[Finding]) -> bool:
    return any(f.level == "error" for f in findings)


def format_findings(findings: Sequence[Finding]) -> str:
    lines: list[str] = []
    for f in findings:
        lines.append(f"{f.level:<5} {f.code:<20} {f.message}")
        if f.fix and f.level != "ok":
            lines.append(f"{'':<26}fix: {f.fix}")
    counts = {lvl: sum(f.level == lvl for f in findings) for lvl in ("ok", "warn", "error")}
    verdict = "FAIL" if counts["error"] else "PASS"
    lines.append(f"summary: {counts['ok']} ok, {counts['warn']} warning(s), {counts['error']} error(s): {verdict}")
    return "\n".join(lines)


def check_output_prefix(triggers: Sequence[Trigger], cfg: Config) -> list[Finding]:
    """Keys under OUTPUT_PREFIX count as the function's own output; an upload there would be skipped."""
    if not cfg.output_prefix:
        return []
    inside = [t for t in triggers if cfg.output_bucket_for(t.bucket) == t.bucket
              and cfg.own_prefix.startswith(t.prefix)]
    return [Finding("error", "output-prefix",
                    f"OUTPUT_PREFIX {cfg.output_prefix!r} lies inside trigger {t.name}'s prefix {t.prefix!r}: images "
                    f"uploaded under {cfg.output_prefix!r} would fire the trigger and be skipped as the function's "
                    "own output", "choose an OUTPUT_PREFIX outside every trigger prefix, or set OUTPUT_BUCKET")
            for t in inside] or [ok("output-prefix", "OUTPUT_PREFIX lies outside every trigger prefix")]
