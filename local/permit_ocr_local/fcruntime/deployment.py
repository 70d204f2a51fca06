"""The s.yaml deployment model: read and resolve s.yaml (Serverless Devs, component fc3), find the one fc3
function, its environment and triggers, and the resolved ``Deployment`` the local runtime runs. The offline
checks (``permit_ocr_local.tools.deploycheck``) read s.yaml through here too, so what is checked is what runs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

Level = Literal["ok", "warn", "error"]

CHECK_ACCOUNT_ID: Final = "1234567890123456"  # stands in for ${config("AccountID")} when only checking
_EXPR_RE = re.compile(r"\$\{([^{}]*)\}")
_CONFIG_RE = re.compile(r"""^config\(\s*["']AccountID["']\s*\)$""")
_ENV_RE = re.compile(r"""^env\(\s*["']([^"']+)["']\s*\)$""")  # ${env('NAME')}: the deploying shell's variable
_OSS_ARN_RE = re.compile(r"^acs:oss:([a-z0-9-]+):([0-9]+|\*):([a-z0-9][a-z0-9-]{1,61}[a-z0-9])$")
_ROLE_ARN_RE = re.compile(r"^acs:ram::([0-9]+|\*):role/.+$")
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


def ok(code: str, message: str) -> Finding:
    return Finding("ok", code, message)


class DeployCheckError(Exception):
    """s.yaml cannot be read or has no fc3 function; the message says which."""


# --- loading and resolving ----------------------------------------------------------------------------


def load_s_yaml(path: str | Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeployCheckError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise DeployCheckError(yaml_problem(path, exc)) from None
    if not isinstance(doc, dict):
        raise DeployCheckError(f"{path} must be a YAML mapping with edition, vars and resources")
    return doc


def yaml_problem(path: str | Path, exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line report (naming "<unicode string>") as one line naming the file, line and column."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}, line {mark.line + 1} column {mark.column + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    also = f" ({context} that starts at line {start.line + 1})" if context and start is not None else ""
    return f"{where}: not valid YAML: {problem}{also}"


def _resolve_str(s: str, scope: Mapping[str, Any], account_id: str, unresolved: list[str]) -> Any:
    def value(expr: str) -> Any:
        e = expr.strip()
        if _CONFIG_RE.match(e):
            return account_id
        env = _ENV_RE.match(e)
        if env and env.group(1) in os.environ:  # Serverless Devs reads the deploying shell's environment
            return os.environ[env.group(1)]
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


def fc3_resources(doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every fc3 resource: (name, props), in file order."""
    return [
        (name, (res.get("props") or {}))
        for name, res in (doc.get("resources") or {}).items()
        if isinstance(res, dict) and str(res.get("component", "")).split("@")[0] == "fc3"
    ]


def function_resource(doc: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The permit-ocr function: the one fc3 resource, or, beside the engine function (s.selfhosted.yaml), the
    one with triggers: (name, props)."""
    found = fc3_resources(doc)
    if len(found) > 1:  # beside the engine function: the one with triggers that no other names as its engine
        engines = {str(environment(p).get("ENGINE_FUNCTION") or "") for _n, p in found}
        found = [(name, props) for name, props in found
                 if props.get("triggers") and str(props.get("functionName")) not in engines]
    if len(found) != 1:
        raise DeployCheckError(f"expected one fc3 resource (or one with triggers beside the engine function), "
                               f"found {len(found)}")
    return found[0]


def engine_resource(doc: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The fc3 resource the main function's ENGINE_FUNCTION names, when this file declares it."""
    _name, main = function_resource(doc)
    wanted = str(environment(main).get("ENGINE_FUNCTION") or "").strip()
    found = [(n, p) for n, p in fc3_resources(doc) if p is not main and str(p.get("functionName")) == wanted]
    return found[0] if wanted and found else None


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


@dataclass(frozen=True)
class Deployment:
    """What s.yaml says about the function, resolved: triggers, env, timeout and async policy."""

    triggers: tuple[Trigger, ...]
    env: dict[str, str]
    timeout: int
    memory: int
    max_async_retries: int
    bucket: str
    prefix: str


def load_deployment(path: Path) -> Deployment:
    doc, _unresolved = resolve(load_s_yaml(path))
    return deployment_of(doc)


@dataclass(frozen=True)
class EngineDeployment:
    """What a deployment file says about the engine function, resolved (defaults when it declares none)."""

    name: str
    timeout: int = 60
    memory: int = 2048
    env: dict[str, str] = field(default_factory=dict)


def load_engine_deployment(path: Path) -> EngineDeployment | None:
    """The engine function the file's main function names (ENGINE_FUNCTION), None when it names none."""
    doc, _unresolved = resolve(load_s_yaml(path))
    _name, main = function_resource(doc)
    wanted = str(environment(main).get("ENGINE_FUNCTION") or "").strip()
    found = engine_resource(doc)
    if found is None:
        return EngineDeployment(wanted) if wanted else None
    props = found[1]
    return EngineDeployment(wanted, int(props.get("timeout") or 3), int(props.get("memorySize") or 512),
                            {k: str(v) for k, v in environment(props).items()})


def deployment_of(doc: Mapping[str, Any]) -> Deployment:
    """The Deployment a resolved document describes (ours, or the one `s preview` renders)."""
    _name, props = function_resource(doc)
    triggers, _findings = parse_triggers(props)
    env = {k: str(v) for k, v in environment(props).items()}
    vars_ = doc.get("vars") or {}
    policy = props.get("asyncInvokeConfig") or {}
    return Deployment(tuple(triggers), env, int(props.get("timeout") or 3), int(props.get("memorySize") or 512),
                      int(policy.get("maxAsyncRetryAttempts", 3)), str(vars_.get("bucket") or ""),
                      str(vars_.get("prefix") or ""))
