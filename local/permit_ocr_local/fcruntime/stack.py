"""The local stack: the OSS, OCR and MNS stand-ins on 127.0.0.1 sharing one keyring, as one cloud account.

``LocalStack.env()`` is the function's whole configuration for talking to them: the same variable names as
in s.yaml and docs/configuration.md, so ``permit-ocr invoke`` and the handler under test read them exactly as in FC.
``LocalStack.faults`` is the one fault plan every stand-in asks (docs/faults.md): rules from
``StackOptions(faults=...)`` or ``permit-ocr stack --faults FILE``, more added or removed while it serves.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

from permit_ocr_local.standins.faults import FaultPlan, FaultRule, HitListener, RuleInput, Target, as_plan
from permit_ocr_local.standins.keyring import Keyring
from permit_ocr_local.standins.mns.server import MnsServer, start_mns
from permit_ocr_local.standins.ocr.backends import Backend
from permit_ocr_local.standins.ocr.server import OcrStandin, start_ocr
from permit_ocr_local.standins.oss.server import OssStandin, start_oss

DEFAULT_BUCKET = "permit-ocr-demo"
DEFAULT_REGION = "cn-hangzhou"
DEFAULT_TOPIC = "permit-ocr-results"
ENGINE_READ_TIMEOUT_MS = "60000"
ENGINE_BACKENDS = ("engine", "truth-or-engine")  # the OCR stand-ins that may run the embedded engine


@dataclass
class StackOptions:
    root: Path
    buckets: tuple[str, ...] = (DEFAULT_BUCKET,)
    region: str = DEFAULT_REGION
    topic: str = DEFAULT_TOPIC
    ocr_backend: Backend | str = "truth"
    # a plan (random rates and rules), or fault rules alone (FaultRule or dicts in the JSON format)
    faults: FaultPlan | Iterable[RuleInput] | None = None
    # buckets (created if missing) whose versioning is set before anything serves
    versioned_buckets: dict[str, Literal["Enabled", "Suspended"]] = field(default_factory=dict)
    sinks: str = "oss"
    ports: tuple[int, int, int] = (0, 0, 0)  # oss, ocr, mns; 0 = any free port
    sts_lifetime_s: float = 12 * 3600
    extra_env: dict[str, str] = field(default_factory=dict)


class LocalStack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.keyring = Keyring()
        # FC hands the function STS credentials; the stack does too, so the token paths are always exercised
        self.access_key_id = "STS.local" + secrets.token_hex(6)
        self.access_key_secret = secrets.token_urlsafe(24)
        self.security_token = "CAIS" + secrets.token_urlsafe(32)
        self.keyring.add(self.access_key_id, self.access_key_secret, self.security_token,
                         expires_at=time.time() + options.sts_lifetime_s)
        self.faults = as_plan(options.faults)  # validated here: a bad rule fails before anything serves
        self.oss: OssStandin | None = None
        self.ocr: OcrStandin | None = None
        self.mns: MnsServer | None = None

    def start(self) -> LocalStack:
        o = self.options
        o.root.mkdir(parents=True, exist_ok=True)
        self.oss = start_oss(o.root, self.keyring, o.region, o.ports[0], self.faults, buckets=o.buckets)
        for bucket, status in o.versioned_buckets.items():
            self.oss.service.state.create_bucket(bucket)
            self.oss.service.state.set_versioning(bucket, status)
        self.ocr = start_ocr(self.keyring, o.ocr_backend, o.ports[1], self.faults)
        self.mns = start_mns(self.keyring, o.root, o.ports[2], self.faults, topics=(o.topic,))
        return self

    def loads_models(self) -> bool:
        """Whether the OCR backend has models to load before its first answer (the embedded engine)."""
        return self.ocr is not None and hasattr(self.ocr.service.backend, "preload")

    def preload(self) -> None:
        """Load the OCR backend's models now (the engine: about 5 s), so the first upload does not wait."""
        if self.ocr is not None and hasattr(self.ocr.service.backend, "preload"):
            self.ocr.service.backend.preload()

    def stop(self) -> None:
        for server in (self.mns, self.ocr, self.oss):
            if server is not None:
                server.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        assert self.oss and self.ocr and self.mns, "start() first"
        o = self.options
        return {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": self.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": self.access_key_secret,
            "ALIBABA_CLOUD_SECURITY_TOKEN": self.security_token,
            "OSS_REGION": o.region,
            "SOURCE_BUCKETS": ",".join(o.buckets),
            "OSS_ENDPOINT": self.oss.url,
            "OSS_PUBLIC_ENDPOINT": self.oss.url,
            "OCR_ENDPOINT": self.ocr.host,
            "OCR_PROTOCOL": "http",
            "MNS_ENDPOINT": self.mns.url,
            "MNS_TOPIC": o.topic,
            "SINKS": o.sinks,
            # the embedded engine on a busy 2-core machine can take longer than a real OCR call (its first call
            # loads the models): a call our side gives up on while the stand-in still answers it is billed twice
            **({"OCR_READ_TIMEOUT_MS": ENGINE_READ_TIMEOUT_MS} if o.ocr_backend in ENGINE_BACKENDS else {}),
            **o.extra_env,
        }

    def describe(self) -> dict[str, Any]:
        return {"root": str(self.options.root), **self.env()}


def announce_rules(rules: Sequence[FaultRule], out: TextIO) -> None:
    """List fault rules, one a line, by their id (= index in the file), as ``permit-ocr stack`` starts."""
    if rules:
        out.write("permit-ocr: fault rules active (the first matching rule in force wins; docs/faults.md):\n")
        out.writelines(f"  #{i} {rule.describe()}\n" for i, rule in enumerate(rules))
        out.flush()


def report_hits(out: TextIO) -> HitListener:
    """A hit listener writing one line per hit: rule, count, service and operation (never the object key:
    keys can hold personal data)."""
    def hit(rule_id: int, rule: FaultRule, service: str, target: Target, hits: int) -> None:
        out.write(f"permit-ocr: fault rule #{rule_id} hit {hits}: {service} {target.operation or '(unrouted)'}\n")
        out.flush()
    return hit


def local_endpoint_down(endpoint: str, timeout_s: float = 0.5) -> bool:
    """True when ``endpoint`` names this machine and nothing listens there (a stopped stack): a one-line answer
    at once instead of the SDK's retries. Real endpoints are never probed: their SDK reports its own errors."""
    url = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    if host not in ("127.0.0.1", "localhost", "::1"):
        return False
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError:
        return True
    return False


def shell_exports(env: dict[str, str]) -> str:
    """``export NAME='value'`` lines, safe for ``eval``."""
    def quote(v: str) -> str:
        return "'" + v.replace("'", "'\"'\"'") + "'"

    return "\n".join(f"export {k}={quote(v)}" for k, v in env.items()) + "\n"
