"""Typed configuration, read from environment variables once per instance.

Every variable is listed in ``SPEC`` with its default and its rule; README.md's configuration table, s.yaml's
``environmentVariables`` and ``permit-ocr stack``'s exports use exactly these names (a test keeps them in step).
A bad value raises ``ConfigError`` naming each offending variable, so a misconfigured deployment fails at
start-up (in ``initialize``) with one clear message instead of half-way through an upload.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

MAX_PRESIGN_SECONDS: Final = 7 * 24 * 3600  # OSS V4 rejects x-oss-expires above 7 days
OCR_MAX_IMAGE_BYTES: Final = 10 * 1024 * 1024  # the API's hard limit on the binary
SINK_NAMES: Final = ("oss", "mns")
IMAGE_SOURCES: Final = ("url", "body")
MIN_OCR_QPS, MAX_OCR_QPS = 0.05, 1000.0  # below one call per 20 s the limiter outwaits any FC timeout
# api: the paid OCR call · engine: the self-hosted engine function only · cascade: the engine first, the paid
# call only for an answer that would need review (docs/selfhosted.md)
OCR_BACKENDS: Final = ("api", "engine", "cascade")
DEFAULT_SUFFIXES: Final = ".jpg,.jpeg,.png,.bmp,.gif,.tif,.tiff,.webp,.heic,.heif,.pdf"
CONVERT_MAX_BYTES: Final = 40 * 1024 * 1024  # the largest upload converted (convert.py reads it whole)
MAX_PDF_PAGES: Final = 50  # PDF_MAX_PAGES' ceiling: one paid call per page, each within the FC timeout
BUCKET_FIELD: Final = "{bucket}"  # in OUTPUT_PREFIX: the source bucket's name (several buckets, one output bucket)


class ConfigError(ValueError):
    """One or more environment variables are missing or invalid; ``problems`` maps name -> reason."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        lines = "; ".join(f"{name}: {why}" for name, why in sorted(problems.items()))
        super().__init__(f"invalid configuration: {lines}")


@dataclass(frozen=True)
class Config:
    region: str
    source_buckets: tuple[str, ...]
    oss_endpoint: str
    oss_public_endpoint: str
    image_source: str
    signed_url_expires: int
    ocr_endpoint: str
    ocr_protocol: str
    ocr_output_figure: bool
    ocr_connect_timeout_ms: int
    ocr_read_timeout_ms: int
    ocr_max_attempts: int
    ocr_qps: float
    output_bucket: str
    output_prefix: str
    result_suffix: str
    error_suffix: str
    sinks: tuple[str, ...]
    mns_endpoint: str
    mns_topic: str
    image_suffixes: tuple[str, ...]
    max_image_bytes: int
    convert_max_bytes: int
    pdf_max_pages: int
    workers: int
    review_min_prob: int
    log_level: str
    log_object_keys: bool
    ocr_backend: str = "api"
    shadow_rate: float = 0.0
    engine_function: str = ""
    engine_endpoint: str = ""
    engine_timeout_ms: int = 20000

    @property
    def uses_engine(self) -> bool:
        """The engine function is called: as the recognizer, first in a cascade, or beside the API (shadow)."""
        return self.ocr_backend != "api" or self.shadow_rate > 0

    def output_bucket_for(self, source_bucket: str) -> str:
        return self.output_bucket or source_bucket

    def output_prefix_for(self, source_bucket: str) -> str:
        """OUTPUT_PREFIX for the outputs of ``source_bucket``'s images (``{bucket}`` names it)."""
        return self.output_prefix.replace(BUCKET_FIELD, source_bucket)

    @property
    def own_prefix(self) -> str:
        """The part of OUTPUT_PREFIX every output key starts with, whatever bucket its image is in."""
        return self.output_prefix.split(BUCKET_FIELD, 1)[0]


# --- small parsers: each returns the value or raises ValueError with the reason -------------------------


def _text(v: str) -> str:
    return v.strip()


def _required(v: str) -> str:
    if not v.strip():
        raise ValueError("is required")
    return v.strip()


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(v: str) -> int:
        try:
            n = int(v.strip())
        except ValueError:
            raise ValueError(f"must be an integer, got {v!r}") from None
        if not lo <= n <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {n}")
        return n

    return parse


def _float_in(lo: float, hi: float) -> Callable[[str], float]:
    def parse(v: str) -> float:
        try:
            x = float(v.strip())
        except ValueError:
            raise ValueError(f"must be a number, got {v!r}") from None
        if not lo <= x <= hi:  # NaN fails both comparisons, so it lands here too
            raise ValueError(f"must be between {lo:g} and {hi:g}, got {v.strip()!r}")
        return x

    return parse


def _bool(v: str) -> bool:
    s = v.strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"must be true or false, got {v!r}")


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(v: str) -> str:
        s = v.strip().lower()
        if s not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {v!r}")
        return s

    return parse


def _csv(v: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in v.split(",") if p.strip())


def _sinks(v: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(s.lower() for s in _csv(v)))
    if not names:
        raise ValueError("must name at least one sink (oss, mns)")
    bad = [n for n in names if n not in SINK_NAMES]
    if bad:
        raise ValueError(f"unknown sink(s) {', '.join(bad)}; use oss, mns or oss,mns")
    return names


def _suffixes(v: str) -> tuple[str, ...]:
    items = tuple(s.lower() for s in _csv(v))
    if not items or any(not s.startswith(".") for s in items):
        raise ValueError(f"must be a comma list of suffixes starting with '.', got {v!r}")
    return items


def _output_suffix(v: str) -> str:
    s = v.strip()
    if not s or "/" in s:
        raise ValueError(f"must be a non-empty suffix without '/', got {v!r}")
    return s


_PREFIX_RE = re.compile(r"^([^/\\][^\\]*/)?$")


def _prefix(v: str) -> str:
    s = v.strip()
    if not _PREFIX_RE.match(s):
        raise ValueError(f"must be empty or a folder ending in '/', not starting with '/', got {v!r}")
    parts = s.split("/")[:-1]
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"must not hold empty, '.' or '..' segments, got {v!r}")
    if s.startswith(".permit-ocr/"):
        raise ValueError("must not be the function's bookkeeping folder .permit-ocr/")
    if BUCKET_FIELD in s and (s.count(BUCKET_FIELD) > 1 or BUCKET_FIELD not in parts[1:]):
        raise ValueError(f"may hold {BUCKET_FIELD} once, as a whole folder after the first (results/{BUCKET_FIELD}/)")
    if ("{" in s or "}" in s) and BUCKET_FIELD not in parts:
        raise ValueError(f"the only placeholder is {BUCKET_FIELD}, got {v!r}")
    return s


_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def _buckets(v: str) -> tuple[str, ...]:
    names = _csv(v)
    if not names:
        raise ValueError("is required: the bucket(s) whose uploads this function may read")
    bad = [b for b in names if not _BUCKET_RE.match(b)]
    if bad:
        raise ValueError(f"invalid bucket name(s): {', '.join(bad)}")
    return names


def _bucket_or_empty(v: str) -> str:
    s = v.strip()
    if s and not _BUCKET_RE.match(s):
        raise ValueError(f"invalid bucket name {s!r}")
    return s


def _endpoint(v: str) -> str:
    s = v.strip().rstrip("/")
    if not s or any(c.isspace() for c in s):
        raise ValueError(f"must be a host or URL, got {v!r}")
    return s


_REGION_RE = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")


def _region(v: str) -> str:
    s = v.strip()
    if s and not _REGION_RE.match(s):
        raise ValueError(f"must be a region id like cn-hangzhou, got {v!r}")
    return s


def _url_or_empty(v: str) -> str:
    s = v.strip().rstrip("/")
    if s and not re.match(r"^https?://[^\s/]+$", s):
        raise ValueError(f"must be http(s)://host[:port], got {v!r}")
    return s


_FUNCTION_RE = re.compile(r"^[_a-zA-Z][-_a-zA-Z0-9]{0,63}$")  # FC 3.0 function names


def _function_name(v: str) -> str:
    s = v.strip()
    if s and not _FUNCTION_RE.match(s):
        raise ValueError(f"must be an FC function name (letters, digits, '-', '_'; 64 at most), got {v!r}")
    return s


def _level(v: str) -> str:
    return _one_of("debug", "info", "warning", "error")(v).upper()


# --- the table: name -> (default, parser, field) --------------------------------------------------------
# A default of None means "derived from other values" (see _derive).

SPEC: Final[dict[str, tuple[str | None, Callable[[str], Any], str, str]]] = {
    "OSS_REGION": ("", _region, "region", "region of the bucket(s); defaults to FC_REGION, then cn-hangzhou"),
    "SOURCE_BUCKETS": ("", _buckets, "source_buckets", "comma list of buckets whose events are accepted"),
    "OSS_ENDPOINT": (None, _endpoint, "oss_endpoint", "OSS endpoint for reads/writes (default internal)"),
    "OSS_PUBLIC_ENDPOINT": (None, _endpoint, "oss_public_endpoint", "OSS endpoint the signed URL points at"),
    "IMAGE_SOURCE": ("url", _one_of(*IMAGE_SOURCES), "image_source", "url (signed URL) or body (bytes)"),
    "SIGNED_URL_EXPIRES": ("300", _int_in(1, MAX_PRESIGN_SECONDS), "signed_url_expires", "seconds"),
    "OCR_ENDPOINT": ("ocr-api.cn-hangzhou.aliyuncs.com", _endpoint, "ocr_endpoint", "OCR API host"),
    "OCR_PROTOCOL": ("https", _one_of("https", "http"), "ocr_protocol", "https in the cloud"),
    "OCR_OUTPUT_FIGURE": ("false", _bool, "ocr_output_figure", "ask OCR for the face box"),
    "OCR_CONNECT_TIMEOUT_MS": ("5000", _int_in(100, 60000), "ocr_connect_timeout_ms", "milliseconds"),
    "OCR_READ_TIMEOUT_MS": ("10000", _int_in(100, 120000), "ocr_read_timeout_ms", "milliseconds"),
    "OCR_MAX_ATTEMPTS": ("4", _int_in(1, 10), "ocr_max_attempts", "attempts per image on transient errors"),
    "OCR_QPS": ("10", _float_in(MIN_OCR_QPS, MAX_OCR_QPS), "ocr_qps", "OCR calls per second this instance may make"),
    "OUTPUT_BUCKET": ("", _bucket_or_empty, "output_bucket", "bucket for results; empty = source bucket"),
    "OUTPUT_PREFIX": ("", _prefix, "output_prefix", "folder prepended to output keys"),
    "RESULT_SUFFIX": (".json", _output_suffix, "result_suffix", "result object = <key><suffix>"),
    "ERROR_SUFFIX": (".error.json", _output_suffix, "error_suffix", "error record = <key><suffix>"),
    "SINKS": ("oss", _sinks, "sinks", "oss, mns or oss,mns"),
    "MNS_ENDPOINT": ("", _url_or_empty, "mns_endpoint", "http(s)://<uid>.mns.<region>.aliyuncs.com"),
    "MNS_TOPIC": ("", _text, "mns_topic", "topic for results and failures"),
    "IMAGE_SUFFIXES": (DEFAULT_SUFFIXES, _suffixes, "image_suffixes", "keys recognized (case-insensitive)"),
    "MAX_IMAGE_BYTES": (str(OCR_MAX_IMAGE_BYTES), _int_in(1, OCR_MAX_IMAGE_BYTES), "max_image_bytes", "bytes"),
    "CONVERT_MAX_BYTES": (str(CONVERT_MAX_BYTES), _int_in(1, 200 * 1024 * 1024), "convert_max_bytes",
                          "uploads converted before OCR (HEIC, PDF, over MAX_IMAGE_BYTES) up to this size"),
    "PDF_MAX_PAGES": ("10", _int_in(1, MAX_PDF_PAGES), "pdf_max_pages",
                      "a PDF with more pages gets an error record, no page is paid for"),
    "WORKERS": ("4", _int_in(1, 32), "workers", "records processed at once in one event"),
    "REVIEW_MIN_PROB": ("90", _int_in(0, 100), "review_min_prob", "valueProb below this flags review"),
    "LOG_LEVEL": ("info", _level, "log_level", "debug, info, warning or error"),
    "LOG_OBJECT_KEYS": ("false", _bool, "log_object_keys", "log object keys in clear (they may hold names)"),
    "OCR_BACKEND": ("api", _one_of(*OCR_BACKENDS), "ocr_backend",
                    "api (the paid call), engine (the engine function) or cascade (engine, then the API if in doubt)"),
    "SHADOW_RATE": ("0", _float_in(0.0, 1.0), "shadow_rate",
                    "with OCR_BACKEND=api: share of uploads the engine also reads, for comparison records"),
    "ENGINE_FUNCTION": ("", _function_name, "engine_function", "the engine function's name (same region)"),
    "ENGINE_ENDPOINT": (None, _url_or_empty, "engine_endpoint",
                        "FC API endpoint; default https://<FC_ACCOUNT_ID>.<region>.fc.aliyuncs.com"),
    "ENGINE_TIMEOUT_MS": ("20000", _int_in(1000, 300000), "engine_timeout_ms",
                          "read timeout of one engine call (covers its cold start)"),
}


def load_config(environ: Mapping[str, str]) -> Config:
    """Parse and validate every variable; raise ConfigError naming all bad ones at once."""
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, (default, parse, field, _doc) in SPEC.items():
        raw = environ.get(name)
        if raw is None or (raw.strip() == "" and default is None):
            if default is None:
                values[field] = None
                continue
            raw = default
        try:
            values[field] = parse(raw)
        except ValueError as exc:
            problems[name] = str(exc)
    _derive(values, environ, problems)
    if problems:
        raise ConfigError(problems)
    return Config(**values)


def _derive(values: dict[str, Any], environ: Mapping[str, str], problems: dict[str, str]) -> None:
    """Fill the derived defaults and check rules that span several variables."""
    region = values.get("region") or environ.get("FC_REGION", "").strip() or "cn-hangzhou"
    values["region"] = region
    if values.get("oss_endpoint") is None:
        values["oss_endpoint"] = f"https://oss-{region}-internal.aliyuncs.com"
    if values.get("oss_public_endpoint") is None:
        values["oss_public_endpoint"] = f"https://oss-{region}.aliyuncs.com"
    public = values["oss_public_endpoint"]
    if values.get("image_source") == "url" and "-internal." in str(public):
        problems["OSS_PUBLIC_ENDPOINT"] = "is an internal endpoint; the OCR service cannot fetch from it"
    sinks = values.get("sinks") or ()
    if "mns" in sinks:
        for name, field in (("MNS_ENDPOINT", "mns_endpoint"), ("MNS_TOPIC", "mns_topic")):
            if not values.get(field):
                problems[name] = "is required when SINKS includes mns"
    buckets, prefix = values.get("source_buckets") or (), str(values.get("output_prefix") or "")
    if len(buckets) > 1 and values.get("output_bucket") and BUCKET_FIELD not in prefix:
        problems["OUTPUT_PREFIX"] = (
            f"SOURCE_BUCKETS names {len(buckets)} buckets and OUTPUT_BUCKET is set: the same key in two of them "
            f"would share one result; put {BUCKET_FIELD} in OUTPUT_PREFIX (e.g. results/{BUCKET_FIELD}/), or leave "
            "OUTPUT_BUCKET empty to write beside each image")
    _derive_engine(values, environ, problems, region)
    rs, es = values.get("result_suffix"), values.get("error_suffix")
    if rs and es and (rs == es):
        problems["ERROR_SUFFIX"] = "must differ from RESULT_SUFFIX"
    for name, field in (("RESULT_SUFFIX", "result_suffix"), ("ERROR_SUFFIX", "error_suffix")):
        suffix = str(values.get(field) or "").lower()
        images = values.get("image_suffixes") or ()
        if suffix and any(suffix.endswith(img) for img in images):
            problems[name] = "ends in an image suffix, so outputs would be recognized again (a loop)"
        elif suffix and any(img.endswith(suffix) for img in images):
            problems[name] = "is the end of an image suffix, so those uploads would be skipped as outputs"


def _derive_engine(values: dict[str, Any], environ: Mapping[str, str], problems: dict[str, str], region: str) -> None:
    """The engine function is named whenever it is called; its endpoint defaults to the account's FC API."""
    backend, rate = values.get("ocr_backend") or "api", values.get("shadow_rate") or 0.0
    if values.get("engine_endpoint") is None:
        account = environ.get("FC_ACCOUNT_ID", "").strip()  # set by FC in every instance
        values["engine_endpoint"] = f"https://{account}.{region}.fc.aliyuncs.com" if account else ""
    if rate and backend != "api":
        problems["SHADOW_RATE"] = (f"applies with OCR_BACKEND=api only (with {backend} the engine already answers "
                                   "every upload); set SHADOW_RATE to 0")
    if backend == "api" and not rate:
        return
    why = f"OCR_BACKEND={backend}" if backend != "api" else f"SHADOW_RATE={rate:g}"
    if not values.get("engine_function"):
        problems["ENGINE_FUNCTION"] = f"is required with {why}: the engine function's name (docs/selfhosted.md)"
    if not values.get("engine_endpoint"):
        problems["ENGINE_ENDPOINT"] = f"is required with {why} outside FC (no FC_ACCOUNT_ID to derive it from)"
