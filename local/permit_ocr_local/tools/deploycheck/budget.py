"""The time budget of one record: what s.yaml's timeout must cover."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from permit_ocr.budget import SAFETY_MARGIN_S
from permit_ocr.config import Config
from permit_ocr.engineclient import CONNECT_TIMEOUT_MS, ENGINE_ATTEMPTS
from permit_ocr.recognize import BASE_BACKOFF_S, MAX_BACKOFF_S
from permit_ocr_local.fcruntime.deployment import Finding, ok

# Time budget of one record besides OCR: the OSS head/read, result PUT, error-record DELETE and MNS publish.
OSS_IO_BUDGET_S: Final = 10.0



def backoff_budget_s(attempts: int) -> float:
    """Longest total pause of permit_ocr.recognize between attempts (full jitter: at most the cap each time)."""
    return float(sum(min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2**a) for a in range(1, attempts)))


def paid_budget_s(cfg: Config) -> float:
    """The paid calls of one record (none with OCR_BACKEND=engine): every attempt hits both timeouts, + backoff."""
    if cfg.ocr_backend == "engine":
        return 0.0
    per_attempt = (cfg.ocr_connect_timeout_ms + cfg.ocr_read_timeout_ms) / 1000
    return cfg.ocr_max_attempts * per_attempt + backoff_budget_s(cfg.ocr_max_attempts)


def engine_budget_s(cfg: Config) -> float:
    """The engine calls of one record in engine and cascade modes. Shadow mode's call needs none: it starts only
    after the result is stored, and only when the invocation still has time for it (else it is skipped)."""
    if cfg.ocr_backend == "api":
        return 0.0
    return ENGINE_ATTEMPTS * (CONNECT_TIMEOUT_MS + cfg.engine_timeout_ms) / 1000 + backoff_budget_s(ENGINE_ATTEMPTS)


def record_budget_s(cfg: Config) -> float:
    """Worst-case seconds for one record: every paid and engine attempt hits both timeouts, plus backoff and OSS
    I/O."""
    return paid_budget_s(cfg) + engine_budget_s(cfg) + OSS_IO_BUDGET_S


def budget_words(cfg: Config) -> str:
    """record_budget_s, as the sum it is."""
    parts = []
    if cfg.ocr_backend != "engine":
        parts.append(f"{cfg.ocr_max_attempts} x ({cfg.ocr_connect_timeout_ms} + {cfg.ocr_read_timeout_ms}) ms + "
                     f"backoff {backoff_budget_s(cfg.ocr_max_attempts):g} s")
    if cfg.ocr_backend != "api":
        parts.append(f"engine {ENGINE_ATTEMPTS} x ({CONNECT_TIMEOUT_MS} + {cfg.engine_timeout_ms}) ms + backoff "
                     f"{backoff_budget_s(ENGINE_ATTEMPTS):g} s")
    return " + ".join([*parts, f"OSS I/O {OSS_IO_BUDGET_S:g} s"]) + f" = {record_budget_s(cfg):g} s"


def recognize_worst_s(cfg: Config) -> float:
    """One recognize step's worst case before a claim may be taken (backend.Backend.worst_call_s)."""
    paid = (cfg.ocr_connect_timeout_ms + cfg.ocr_read_timeout_ms) / 1000
    engine = (CONNECT_TIMEOUT_MS + cfg.engine_timeout_ms) / 1000
    return {"api": paid, "engine": engine, "cascade": engine + paid}[cfg.ocr_backend]


def call_window_s(cfg: Config, timeout_s: float) -> float:
    """How long into an invocation a record's recognition may still start: the function starts no call that
    could outlive FC's timeout (its worst case, the SDKs' connect and read timeouts; both calls of a cascade) or
    leave less than SAFETY_MARGIN_S to store."""
    return timeout_s - SAFETY_MARGIN_S - recognize_worst_s(cfg)


def calls_per_invocation(cfg: Config, timeout_s: float) -> int:
    """Paid calls one invocation can start at OCR_QPS (the first at once, then one per 1/OCR_QPS s)."""
    window = call_window_s(cfg, timeout_s)
    return 0 if window < 0 else int(window * cfg.ocr_qps) + 1


def invocations_for(records: int, cfg: Config, timeout_s: float) -> int | None:
    """Invocations an event of ``records`` uploads needs (the ones without time left go to FC's retry); None when
    no record could ever start its call."""
    per = calls_per_invocation(cfg, timeout_s)
    return None if per == 0 else -(-records // per)


BACKFILL_MAX_BATCH = 100  # records per event backfill may send (tools/backfill/rules.MAX_BATCH; a tool: not imported)


def check_batch(props: Mapping[str, Any], cfg: Config, largest: int = BACKFILL_MAX_BATCH) -> list[Finding]:
    """Many records in one event (backfill sends up to 100): calls that cannot start in time are left to FC's
    retry (paid once: they never start late), so the event needs more invocations than FC gives it."""
    timeout = props.get("timeout")
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        return []  # check_timeout says so
    retries = (props.get("asyncInvokeConfig") or {}).get("maxAsyncRetryAttempts", 3)
    tries = 1 + (retries if isinstance(retries, int) else 3)
    per = calls_per_invocation(cfg, timeout)
    if per == 0:
        return [Finding("error", "batch", f"timeout {timeout} s leaves no time to start one OCR call (its worst case "
                        f"{recognize_worst_s(cfg):g} s plus "
                        f"{SAFETY_MARGIN_S:g} s to store it): every record would wait for FC's retry forever",
                        "raise timeout, or lower OCR_CONNECT_TIMEOUT_MS / OCR_READ_TIMEOUT_MS")]
    needed = invocations_for(largest, cfg, timeout) or 0
    how = (f"one invocation starts at most {per} OCR calls (OCR_QPS {cfg.ocr_qps:g} over the "
           f"{call_window_s(cfg, timeout):g} s a call may still start in)")
    if needed > tries:
        return [Finding("error", "batch", f"an event of {largest} records (the most backfill sends) needs {needed} "
                        f"invocations: {how}, and FC tries {tries} times; the rest would end on the failure "
                        "topic", f"keep backfill --batch <= {per * tries}, or raise timeout or OCR_QPS")]
    if needed > 1:
        return [ok("batch", f"{how}: an event of {largest} records takes {needed} invocations (FC tries {tries} "
                   f"times; records without time left are retried, never paid twice); --batch {per} fits one")]
    return [ok("batch", f"{how}: an event of {largest} records fits one invocation")]
