"""The engine function's checks (OCR_BACKEND=engine|cascade, SHADOW_RATE): the main function names it, the file
declares it as the measurement sized it (docs/selfhosted.md), its package is built before deploy, the image fits
FC's synchronous payload, and the two functions' timeouts and instances agree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from permit_ocr import enginewire
from permit_ocr.config import Config
from permit_ocr_local.fcruntime.deployment import Finding, engine_resource, ok
from permit_ocr_local.standins.fc.rules import SYNC_PAYLOAD_MAX

ENGINE_PACKAGE_DIR: Final = "./dist/engine"
ENGINE_BUILD_COMMANDS: Final = ("make package-engine", "bench/package.py --engine")
ENGINE_HANDLER: Final = "index.handler"
# the smallest memorySize that holds the engine: peak RSS measured by `make bench` (engine function table), with
# room for a 10 MB image decoded at full size (docs/selfhosted.md, "Sizing")
ENGINE_MIN_MEMORY_MB: Final = 1024
ENGINE_MIN_TIMEOUT_S: Final = 10  # the initializer runs apart; one image takes about a second at 1 vCPU (make bench)


def check_engine(resolved: Mapping[str, Any], main: Mapping[str, Any], cfg: Config) -> list[Finding]:
    if not cfg.uses_engine:
        return []
    why = f"OCR_BACKEND={cfg.ocr_backend}" if cfg.ocr_backend != "api" else f"SHADOW_RATE={cfg.shadow_rate:g}"
    findings = _payload(cfg) + _reads(cfg)
    found = engine_resource(resolved)
    if found is None:
        return [*findings, Finding("warn", "engine-function", f"{why} calls the engine function "
                                   f"{cfg.engine_function!r}, which this file does not declare: deploy it before this "
                                   "function (until then every upload is retried)",
                                   "deploy s.selfhosted.yaml, which declares both (docs/selfhosted.md)")]
    name, props = found
    resource = (resolved.get("resources") or {}).get(name) or {}
    findings += _engine_build(resource, props) + _engine_settings(props, main, cfg)
    return findings or [ok("engine-function", f"{why}: the engine function {cfg.engine_function!r} is declared, "
                           f"built before deploy, {props.get('memorySize')} MB, timeout {props.get('timeout')} s, "
                           "no internet, no triggers")]


def _payload(cfg: Config) -> list[Finding]:
    request = cfg.max_image_bytes + len(enginewire.MAGIC) + enginewire.MAX_OPTIONS_BYTES
    if request > SYNC_PAYLOAD_MAX:
        return [Finding("error", "engine-payload", f"an image of MAX_IMAGE_BYTES {cfg.max_image_bytes} makes a "
                        f"request over FC's {SYNC_PAYLOAD_MAX} byte synchronous payload limit",
                        "lower MAX_IMAGE_BYTES")]
    return []


def _reads(cfg: Config) -> list[Finding]:
    if cfg.ocr_backend != "api" and cfg.image_source == "url":
        return [Finding("warn", "engine-reads", f"OCR_BACKEND={cfg.ocr_backend} with IMAGE_SOURCE=url reads each "
                        "image twice (the header for the precheck, then every byte for the engine)",
                        "set IMAGE_SOURCE=body: one read")]
    return []


def _engine_build(resource: Mapping[str, Any], props: Mapping[str, Any]) -> list[Finding]:
    actions = (resource.get("actions") or {}).get("pre-deploy") or []
    runs = [str(a.get("run") or "") for a in actions if isinstance(a, dict)]
    findings: list[Finding] = []
    if not any(cmd in r for r in runs for cmd in ENGINE_BUILD_COMMANDS):
        findings.append(Finding("error", "engine-build", "no pre-deploy action builds the engine function's package",
                                "add actions: {pre-deploy: [{run: make package-engine, path: ./}]}"))
    if str(props.get("code")).rstrip("/") != ENGINE_PACKAGE_DIR:
        findings.append(Finding("error", "engine-build", f"the engine function's code is {props.get('code')!r}, not "
                                f"the build output {ENGINE_PACKAGE_DIR}", f"set code: {ENGINE_PACKAGE_DIR}"))
    return findings


def _engine_settings(props: Mapping[str, Any], main: Mapping[str, Any], cfg: Config) -> list[Finding]:
    findings: list[Finding] = []
    if props.get("runtime") != "python3.12" or props.get("handler") != ENGINE_HANDLER:
        findings.append(Finding("error", "engine-runtime", f"the engine function runs {props.get('runtime')!r} "
                                f"with handler {props.get('handler')!r}; its package is built for python3.12",
                                f"set runtime: python3.12, handler: {ENGINE_HANDLER}"))
    if props.get("region") != main.get("region"):
        findings.append(Finding("error", "engine-region", f"the engine function is in {props.get('region')}, the "
                                f"function in {main.get('region')}", "deploy both in one region"))
    if props.get("triggers"):
        findings.append(Finding("error", "engine-triggers", "the engine function has triggers: only the main "
                                "function invokes it", "remove its triggers"))
    mem = props.get("memorySize")
    if not isinstance(mem, int) or mem < ENGINE_MIN_MEMORY_MB:
        findings.append(Finding("error", "engine-memory", f"the engine function's memorySize {mem!r} is under the "
                                f"{ENGINE_MIN_MEMORY_MB} MB its models and a full-size image need (make bench)",
                                f"set memorySize: {ENGINE_MIN_MEMORY_MB} or more"))
    timeout = props.get("timeout")
    if not isinstance(timeout, int) or timeout < ENGINE_MIN_TIMEOUT_S:
        findings.append(Finding("error", "engine-timeout", f"the engine function's timeout {timeout!r} is under "
                                f"{ENGINE_MIN_TIMEOUT_S} s", f"set timeout: {ENGINE_MIN_TIMEOUT_S} or more"))
    elif timeout * 1000 > cfg.engine_timeout_ms:
        findings.append(Finding("warn", "engine-timeout", f"ENGINE_TIMEOUT_MS {cfg.engine_timeout_ms} gives up "
                                f"before the engine function's own timeout ({timeout} s): a slow call is retried "
                                "while the first still runs, and FC bills both", "raise ENGINE_TIMEOUT_MS to the "
                                "engine function's timeout, or lower that"))
    if props.get("internetAccess") is not False:
        findings.append(Finding("warn", "engine-internet", "the engine function may reach the internet (fc3's "
                                "default): it needs none, and the images it reads are identity documents",
                                "set internetAccess: false"))
    findings += _instances(props, main, cfg)
    return findings


def _instances(props: Mapping[str, Any], main: Mapping[str, Any], cfg: Config) -> list[Finding]:
    """Each main instance waits on at most WORKERS engine calls at once (one per record of a backfill event)."""
    cap = (props.get("concurrencyConfig") or {}).get("reservedConcurrency")
    callers = (main.get("concurrencyConfig") or {}).get("reservedConcurrency")
    if isinstance(cap, int) and isinstance(callers, int) and cap < callers:
        return [Finding("warn", "engine-instances", f"the engine function may run {cap} instance(s), the function "
                        f"{callers}: calls beyond {cap} at once are throttled and retried",
                        f"set the engine function's reservedConcurrency to {callers} (x WORKERS {cfg.workers} "
                        "for backfill bursts) or more")]
    return []
