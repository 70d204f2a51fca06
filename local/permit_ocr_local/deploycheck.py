"""Offline checks of ``s.yaml`` (Serverless Devs, component fc3) against the function's own configuration.

The ``s`` CLI needs the network to validate anything, so this module re-derives what matters from the file:
trigger loops (an output key that matches a trigger filter), wildcard or per-part trigger events, buckets the
function would refuse, timeouts too short for the OCR retry budget, and every environment value run through
``permit_ocr.config.load_config``. Each check is a pure function returning ``Finding`` objects; the
``check-config`` command prints them. ``render_policy`` derives the function role's RAM policy from the same
resolved file, so the policy and the deployment cannot drift apart.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from permit_ocr import guards
from permit_ocr.config import MAX_PRESIGN_SECONDS, SPEC, Config, ConfigError, load_config
from permit_ocr.layout import MARKER_RETENTION_DAYS, MARKERS_PREFIX, OVERLONG_PREFIX
from permit_ocr.recognize import BASE_BACKOFF_S, MAX_BACKOFF_S

Level = Literal["ok", "warn", "error"]

CHECK_ACCOUNT_ID: Final = "1234567890123456"  # stands in for ${config("AccountID")} when only checking
POLICY_ACCOUNT_ID: Final = "*"  # rendered policies match any account unless --account-id is given
RUNTIMES: Final = ("python3.10", "python3.12")
OSS_PREFIX: Final = "oss:ObjectCreated:"
RECOMMENDED_EVENTS: Final = tuple(OSS_PREFIX + e for e in ("PutObject", "PostObject", "CompleteMultipartUpload"))
# events that fire before the object is complete, or for every part of a multipart upload
PARTIAL_EVENTS: Final = tuple(
    OSS_PREFIX + e for e in ("*", "InitiateMultipartUpload", "UploadPart", "UploadPartCopy")
)
WARN_EVENTS: Final = (OSS_PREFIX + "AppendObject", OSS_PREFIX + "PutSymlink")
OK_EVENTS: Final = (*RECOMMENDED_EVENTS, OSS_PREFIX + "CopyObject")
OUTPUT_WRITE_EVENTS: Final = (OSS_PREFIX + "PutObject", OSS_PREFIX + "*")  # what a result PutObject fires
MAX_TRIGGERS_PER_BUCKET: Final = 10
ENV_MAX_BYTES: Final = 4096
# Time budget of one record besides OCR: the OSS head/read, result PUT, error-record DELETE and MNS publish.
OSS_IO_BUDGET_S: Final = 10.0

_EXPR_RE = re.compile(r"\$\{([^{}]*)\}")
_CONFIG_RE = re.compile(r"""^config\(\s*["']AccountID["']\s*\)$""")
_OSS_ARN_RE = re.compile(r"^acs:oss:([a-z0-9-]+):([0-9]+|\*):([a-z0-9][a-z0-9-]{1,61}[a-z0-9])$")
_ROLE_ARN_RE = re.compile(r"^acs:ram::([0-9]+|\*):role/.+$")
_DEST_ARN_RE = re.compile(r"^acs:(mns|fc|eventbridge|rocketmq):([a-z0-9-]+):[0-9]*:(.+)$")
_MNS_TOPIC_DEST_RE = re.compile(r"^/topics/([A-Za-z0-9-]+)/messages$")
# an EventBridge OSS event's subject: acs:oss:<region>:<uid>:<bucket>/<key>
_OSS_SUBJECT_RE = re.compile(r"^acs:oss:([a-z0-9-]+):([0-9]+|\*):([a-z0-9][a-z0-9-]{1,61}[a-z0-9])/(.*)$")


@dataclass(frozen=True)
class Finding:
    level: Level
    code: str
    message: str
    fix: str = ""


@dataclass(frozen=True)
class Trigger:
    name: str
    bucket: str
    region: str
    prefix: str
    suffix: str
    events: tuple[str, ...]
    kind: str = "oss"  # oss (native, one prefix and one case-sensitive suffix) | eventbridge (a CloudEvents rule)
    pattern: str = ""  # eventbridge: the rule's eventRuleFilterPattern (JSON)


class DeployCheckError(Exception):
    """s.yaml cannot be read or has no fc3 function; the message says which."""


def ok(code: str, message: str) -> Finding:
    return Finding("ok", code, message)


# --- loading and resolving -------------------------------------------------------------------------------


def load_s_yaml(path: str | Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeployCheckError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise DeployCheckError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise DeployCheckError(f"{path} must be a YAML mapping with edition, vars and resources")
    return doc


def _resolve_str(s: str, scope: Mapping[str, Any], account_id: str, unresolved: list[str]) -> Any:
    def value(expr: str) -> Any:
        e = expr.strip()
        if _CONFIG_RE.match(e):
            return account_id
        for head in ("vars.", "this.props."):
            if e.startswith(head) and e[len(head) :] in scope.get(head, {}):
                return scope[head][e[len(head) :]]
        unresolved.append("${" + expr + "}")
        return "${" + expr + "}"

    whole = _EXPR_RE.fullmatch(s)
    if whole:  # a lone ${...} keeps the value's type, as Serverless Devs does
        return value(whole.group(1))
    return _EXPR_RE.sub(lambda m: str(value(m.group(1))), s)


def _resolve_tree(node: Any, scope: Mapping[str, Any], account_id: str, unresolved: list[str]) -> Any:
    if isinstance(node, str):
        return _resolve_str(node, scope, account_id, unresolved)
    if isinstance(node, dict):
        return {k: _resolve_tree(v, scope, account_id, unresolved) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_tree(v, scope, account_id, unresolved) for v in node]
    return node


def resolve(doc: Mapping[str, Any], account_id: str = CHECK_ACCOUNT_ID) -> tuple[dict[str, Any], list[str]]:
    """Substitute ``${vars.x}``, ``${config("AccountID")}`` and ``${this.props.x}``; return the unresolved."""
    unresolved: list[str] = []
    raw_vars = doc.get("vars") or {}
    vars_: dict[str, Any] = {}
    for _ in range(5):  # vars may refer to vars; a few passes settle any sane chain
        pending: list[str] = []
        vars_ = _resolve_tree(raw_vars, {"vars.": vars_ or raw_vars}, account_id, pending)
    unresolved += pending
    out: dict[str, Any] = {k: v for k, v in doc.items() if k != "resources"}
    out["vars"] = vars_
    resources: dict[str, Any] = {}
    for name, res in (doc.get("resources") or {}).items():
        props = (res or {}).get("props") or {}
        plain = {k: v for k, v in props.items() if isinstance(v, str) and "${this." not in v}
        scope = {"vars.": vars_, "this.props.": _resolve_tree(plain, {"vars.": vars_}, account_id, [])}
        resources[name] = _resolve_tree(res, scope, account_id, unresolved)
    out["resources"] = resources
    return out, unresolved


def function_resource(doc: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The one fc3 resource: (name, props)."""
    found = [
        (name, (res.get("props") or {}))
        for name, res in (doc.get("resources") or {}).items()
        if isinstance(res, dict) and str(res.get("component", "")).split("@")[0] == "fc3"
    ]
    if len(found) != 1:
        raise DeployCheckError(f"expected exactly one resource with component fc3, found {len(found)}")
    return found[0]


def environment(props: Mapping[str, Any], overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = dict(props.get("environmentVariables") or {})
    env.update(overrides or {})
    return env


def parse_triggers(props: Mapping[str, Any]) -> tuple[list[Trigger], list[Finding]]:
    triggers: list[Trigger] = []
    findings: list[Finding] = []
    for i, t in enumerate(props.get("triggers") or []):
        name = str(t.get("triggerName") or f"#{i + 1}")
        if t.get("triggerType") == "eventbridge":
            item = parse_eventbridge_trigger(name, t.get("triggerConfig") or {})
            if isinstance(item, Trigger):
                triggers.append(item)
            else:
                findings.append(item)
            continue
        if t.get("triggerType") != "oss":
            findings.append(Finding("warn", "trigger-type", f"trigger {name}: type {t.get('triggerType')!r} "
                                    "is not checked (only oss triggers are)"))
            continue
        arn = str(t.get("sourceArn") or "")
        m = _OSS_ARN_RE.match(arn)
        if not m:
            findings.append(Finding("error", "trigger-arn", f"trigger {name}: sourceArn {arn!r} is not "
                                    "acs:oss:<region>:<uid>:<bucket>",
                                    'set sourceArn: acs:oss:${vars.region}:${config("AccountID")}:${vars.bucket}'))
            continue
        role = str(t.get("invocationRole") or "")
        if not _ROLE_ARN_RE.match(role):
            findings.append(Finding("error", "trigger-role", f"trigger {name}: invocationRole {role!r} is not "
                                    "acs:ram::<uid>:role/<name>", "set invocationRole: ${vars.triggerRoleArn} "
                                    "(deploy/README.md: the OSS trigger role)"))
        cfg = t.get("triggerConfig") or {}
        key = ((cfg.get("filter") or {}).get("key")) or {}
        triggers.append(Trigger(
            name=name, region=m.group(1), bucket=m.group(3),
            prefix=str(key.get("prefix") or ""), suffix=str(key.get("suffix") or ""),
            events=tuple(str(e) for e in cfg.get("events") or ()),
        ))
    return triggers, findings


def parse_eventbridge_trigger(name: str, cfg: Mapping[str, Any]) -> Trigger | Finding:
    """An EventBridge-based OSS trigger as a Trigger: bucket and prefix from the rule's ``subject`` prefix
    (acs:oss:<region>:<uid>:<bucket>/<prefix>), events from its ``type`` list, no suffix (any case, any suffix)."""
    fix = ('eventRuleFilterPattern: \'{"source":["acs.oss"],"type":[...],"subject":[{"prefix":'
           '"acs:oss:<region>:<uid>:<bucket>/<prefix>"}]}\' (see s.eventbridge.yaml)')
    try:
        pattern = json.loads(str(cfg.get("eventRuleFilterPattern") or ""))
    except ValueError:
        return Finding("error", "trigger-pattern", f"trigger {name}: eventRuleFilterPattern is not JSON", fix)
    if not isinstance(pattern, dict) or pattern.get("source") != ["acs.oss"]:
        return Finding("error", "trigger-pattern", f"trigger {name}: the rule must match source [\"acs.oss\"]", fix)
    subjects = [s.get("prefix") for s in pattern.get("subject") or [] if isinstance(s, dict)]
    parsed = [m for s in subjects if isinstance(s, str) and (m := _OSS_SUBJECT_RE.match(s))]
    if len(parsed) != 1 or len(subjects) != len(pattern.get("subject") or []):
        return Finding("error", "trigger-pattern", f"trigger {name}: the rule needs exactly one subject prefix "
                       "acs:oss:<region>:<uid>:<bucket>/<prefix> (else every bucket of the account invokes)", fix)
    m = parsed[0]
    types = pattern.get("type")
    events = tuple(str(e) for e in types) if isinstance(types, list) else ("oss:ObjectCreated:*",)
    return Trigger(name=name, bucket=m.group(3), region=m.group(1), prefix=m.group(4), suffix="", events=events,
                   kind="eventbridge", pattern=json.dumps(pattern))


# --- time budget ---------------------------------------------------------------------------------------------


def backoff_budget_s(attempts: int) -> float:
    """Longest total pause of permit_ocr.recognize between attempts (full jitter: at most the cap each time)."""
    return float(sum(min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2**a) for a in range(1, attempts)))


def record_budget_s(cfg: Config) -> float:
    """Worst-case seconds for one record: every OCR attempt hits both timeouts, plus backoff and OSS I/O."""
    per_attempt = (cfg.ocr_connect_timeout_ms + cfg.ocr_read_timeout_ms) / 1000
    return cfg.ocr_max_attempts * per_attempt + backoff_budget_s(cfg.ocr_max_attempts) + OSS_IO_BUDGET_S


# --- the loop analysis ----------------------------------------------------------------------------------------


def _join_prefix(p1: str, out_prefix: str, p2: str) -> str | None:
    """The start a source key k needs so that k starts with p1 and out_prefix + k starts with p2."""
    if len(out_prefix) >= len(p2):
        return p1 if out_prefix.startswith(p2) else None
    if not p2.startswith(out_prefix):
        return None
    rest = p2[len(out_prefix) :]
    if rest.startswith(p1):
        return rest
    return p1 if p1.startswith(rest) else None


def _longer_suffix(a: str, b: str) -> str | None:
    if a.endswith(b):
        return a
    return b if b.endswith(a) else None


def _join_suffix(s1: str, out_suffix: str, s2: str, image_suffixes: Iterable[str]) -> str | None:
    """The end a source key k needs: k ends with s1 and an image suffix, and k + out_suffix ends with s2."""
    if len(out_suffix) >= len(s2):
        if not out_suffix.endswith(s2):
            return None
        need = ""
    elif s2.endswith(out_suffix):
        need = s2[: len(s2) - len(out_suffix)]
    else:
        return None
    tail = _longer_suffix(s1, need)
    if tail is None:
        return None
    for img in image_suffixes:  # the function lower-cases the key before testing IMAGE_SUFFIXES
        if tail.lower().endswith(img):
            return tail
        if img.endswith(tail.lower()):
            return img[: len(img) - len(tail)] + tail
    return None


def loop_example(src: Trigger, dst: Trigger, out_prefix: str, out_suffix: str, cfg: Config) -> str | None:
    """A source key that ``src`` fires for and whose output (prefix + key + suffix) ``dst`` fires for, or None.

    Both filters are plain startswith/endswith tests, so the prefix and the suffix constraints are independent:
    a long enough key satisfies both ends at once.
    """
    if not any(e in OUTPUT_WRITE_EVENTS for e in dst.events):
        return None
    head = _join_prefix(src.prefix, out_prefix, dst.prefix)
    tail = _join_suffix(src.suffix, out_suffix, dst.suffix, cfg.image_suffixes)
    if head is None or tail is None:
        return None
    key = f"{head}permit{tail}"
    if guards.is_own_output(key, cfg):  # the function skips its own outputs: no write, no loop
        return None
    return key


def check_output_loops(triggers: Sequence[Trigger], cfg: Config) -> list[Finding]:
    # even with SINKS=mns the function stores a small receipt at the result key, so outputs always exist
    findings: list[Finding] = []
    for t in triggers:
        if cfg.output_prefix and t.prefix.startswith(cfg.output_prefix):
            findings.append(Finding(
                "error", "output-prefix", f"trigger {t.name}: every key under {t.prefix!r} starts with "
                f"OUTPUT_PREFIX {cfg.output_prefix!r}, so the function skips it as its own output",
                "use an OUTPUT_PREFIX outside the trigger prefix (e.g. results/), or '' to write beside images"))
    for src in triggers:
        out_bucket = cfg.output_bucket_for(src.bucket)
        for dst in (t for t in triggers if t.bucket == out_bucket):
            for what, suffix in (("result", cfg.result_suffix), ("error record", cfg.error_suffix)):
                key = loop_example(src, dst, cfg.output_prefix, suffix, cfg)
                if key is None:
                    continue
                out = cfg.output_key(key, suffix)
                findings.append(Finding(
                    "error", "output-loop",
                    f"the {what} of {src.bucket}/{key} (trigger {src.name}) is {out_bucket}/{out}, which trigger "
                    f"{dst.name} (prefix {dst.prefix!r}, suffix {dst.suffix!r}) fires for again",
                    "give every trigger an image suffix (.jpg, .png, ...), or move outputs out of the trigger "
                    "prefix (OUTPUT_PREFIX, e.g. results/) or to another bucket (OUTPUT_BUCKET)",
                ))
                break  # one finding per trigger pair is enough
    if not findings:
        where = cfg.output_bucket or "the source bucket"
        findings.append(ok("output-loop", f"no output key ({cfg.output_prefix}<key>{cfg.result_suffix} or "
                           f"{cfg.output_prefix}<key>{cfg.error_suffix} in {where}) matches a trigger filter"))
    return findings


# --- checks ------------------------------------------------------------------------------------------------------


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
    arithmetic = (f"{cfg.ocr_max_attempts} x ({cfg.ocr_connect_timeout_ms} + {cfg.ocr_read_timeout_ms}) ms "
                  f"+ backoff {backoff_budget_s(cfg.ocr_max_attempts):g} s + OSS I/O {OSS_IO_BUDGET_S:g} s "
                  f"= {need:g} s")
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        return [Finding("error", "timeout", f"timeout is {timeout!r} (fc3 default 3 s); one record needs "
                        f"{arithmetic}", f"set timeout: {math.ceil(need)} or more")]
    if timeout < need:
        return [Finding("error", "timeout", f"timeout {timeout} s is shorter than one record's worst case: "
                        f"{arithmetic}", f"raise timeout to >= {math.ceil(need)}, or lower "
                        "OCR_READ_TIMEOUT_MS / OCR_MAX_ATTEMPTS")]
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
                    and _longer_suffix(a.suffix, b.suffix) is not None
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
    need = record_budget_s(cfg) - OSS_IO_BUDGET_S
    if cfg.image_source == "url" and cfg.signed_url_expires < need:
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
    findings += check_timeout(props, cfg) + check_signed_url_lifetime(cfg)
    findings += check_trigger_sources(triggers, props, cfg) + check_trigger_suffixes(triggers, cfg)
    findings += check_output_loops(triggers, cfg) + check_output_prefix(triggers, cfg) + check_ocr_quota(props, cfg)
    return findings


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


# --- the function role's policy -------------------------------------------------------------------------------


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
    the outputs of an image (one listing shows the image's ETag and both outputs before a write).
    """
    resolved, _ = resolve(doc, account_id)
    _name, props = function_resource(resolved)
    cfg = load_config({k: str(v) for k, v in environment(props, env_overrides).items()})
    triggers, _ = parse_triggers(props)
    region = str(props.get("region"))

    def outputs(*suffixes: str) -> list[str]:
        return [f"acs:oss:*:*:{cfg.output_bucket_for(t.bucket)}/{cfg.output_prefix}{t.prefix}*{s}"
                for t in triggers for s in _minimal_suffixes(*suffixes)]

    uploads = [f"acs:oss:*:*:{t.bucket}/{t.prefix}*" for t in triggers]
    all_outputs = outputs(cfg.result_suffix, cfg.error_suffix)
    out_buckets = sorted({cfg.output_bucket_for(t.bucket) for t in triggers})
    markers = [f"acs:oss:*:*:{b}/{MARKERS_PREFIX}*" for b in out_buckets]
    overlong = [f"acs:oss:*:*:{b}/{OVERLONG_PREFIX}*" for b in out_buckets]
    listed = sorted({f"{cfg.output_prefix}{t.prefix}*" for t in triggers} | {f"{OVERLONG_PREFIX}*"})
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
            {"Effect": "Allow", "Action": ["oss:PutObject"], "Resource": _minimal(all_outputs + markers + overlong)},
            # one outcome per key: a result replaces the key's error record, an error record its stale result
            {"Effect": "Allow", "Action": ["oss:DeleteObject"], "Resource": _minimal(all_outputs + overlong)},
            {"Effect": "Allow", "Action": ["oss:ListObjects"],
             "Resource": [f"acs:oss:*:*:{b}" for b in out_buckets],
             "Condition": {"StringLike": {"oss:Prefix": listed}}},
        ]
    statements.append({"Effect": "Allow", "Action": ["ocr:RecognizeExitEntryPermitToMainland"], "Resource": ["*"]})
    if topics:
        # the topic and its /messages path: PublishMessage is POST /topics/<name>/messages
        resources = [f"acs:mns:{region}:{account_id}:/topics/{n}{tail}"
                     for n in dict.fromkeys(topics) for tail in ("", "/messages")]
        statements.append({"Effect": "Allow", "Action": ["mns:PublishMessage"], "Resource": resources})
    return {"Version": "1", "Statement": statements}


def render_lifecycle(doc: Mapping[str, Any], env_overrides: Mapping[str, str] | None = None,
                     days: int = MARKER_RETENTION_DAYS) -> dict[str, str]:
    """Output bucket -> the PutBucketLifecycle XML that expires the function's version markers (and nothing
    else) after ``days``. Apply it with the console, ossutil or the SDK; it replaces the bucket's rules, so
    merge it into any rules the bucket already has."""
    resolved, _ = resolve(doc, CHECK_ACCOUNT_ID)
    _name, props = function_resource(resolved)
    cfg = load_config({k: str(v) for k, v in environment(props, env_overrides).items()})
    triggers, _ = parse_triggers(props)
    rule = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LifecycleConfiguration>\n  <Rule>\n"
            "    <ID>permit-ocr-version-markers</ID>\n"
            f"    <Prefix>{MARKERS_PREFIX}</Prefix>\n    <Status>Enabled</Status>\n"
            f"    <Expiration>\n      <Days>{days}</Days>\n    </Expiration>\n  </Rule>\n</LifecycleConfiguration>\n")
    return {b: rule for b in sorted({cfg.output_bucket_for(t.bucket) for t in triggers})}


def check_output_prefix(triggers: Sequence[Trigger], cfg: Config) -> list[Finding]:
    """Keys under OUTPUT_PREFIX count as the function's own output; an upload there would be skipped."""
    if not cfg.output_prefix:
        return []
    inside = [t for t in triggers if cfg.output_bucket_for(t.bucket) == t.bucket
              and cfg.output_prefix.startswith(t.prefix)]
    return [Finding("error", "output-prefix",
                    f"OUTPUT_PREFIX {cfg.output_prefix!r} lies inside trigger {t.name}'s prefix {t.prefix!r}: images "
                    f"uploaded under {cfg.output_prefix!r} would fire the trigger and be skipped as the function's "
                    "own output", "choose an OUTPUT_PREFIX outside every trigger prefix, or set OUTPUT_BUCKET")
            for t in inside] or [ok("output-prefix", "OUTPUT_PREFIX lies outside every trigger prefix")]


def policy_json(policy: Mapping[str, Any]) -> str:
    return json.dumps(policy, indent=2, ensure_ascii=False) + "\n"
