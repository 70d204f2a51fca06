"""The OCR API's documented rules (ocr-api.md §9, §13), as pure functions: which parameters and images it
accepts. Written from the docs, not from the function's own constants, so a wrong limit in ``function/``
shows up as a failing test instead of being mirrored here."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from ..faults import Target
from ..http import Request
from .errors import OcrError
from .imageinfo import dimensions, sniff_format

ACTION = "RecognizeExitEntryPermitToMainland"
VERSION = "2021-07-07"
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_URL_CHARS = 2048
MIN_SIDE, MAX_SIDE, MAX_ASPECT = 15, 8192, 50  # each side > 15 and < 8192, ratio < 50 (§13)


def parse_bool(value: str) -> bool:
    """The SDK sends str(bool) ('True'/'False'); other clients send lower case."""
    low = value.lower()
    if low not in ("true", "false"):
        raise OcrError("InvalidParameter", f"The parameter OutputFigure is invalid: {value!r}.")
    return low == "true"


def check_image(image: bytes) -> None:
    """Raise the API's answer for an image outside the documented limits."""
    if len(image) > MAX_IMAGE_BYTES:
        raise OcrError("exceededImageContent")
    size = dimensions(image) if sniff_format(image) else None
    if size is None:  # unknown magic, or a header that does not parse (a decode failure is 415 too)
        raise OcrError("unsupportedImageFormat")
    w, h = size
    if not all(MIN_SIDE < side < MAX_SIDE for side in size) or max(w, h) / min(w, h) >= MAX_ASPECT:
        raise OcrError("illegalImageSize")


def image_source(url: str, body: bytes) -> str:
    """"url" or "body": the doc wants exactly one of them, never both, never neither."""
    if bool(url) == bool(body):
        message = "Specify the image URL or the body, not both." if url else None
        raise OcrError("imageUrlOrBodyEmpty", message)
    if url and len(url) > MAX_URL_CHARS:
        raise OcrError("exceededImageUrlLength")
    return "url" if url else "body"


def check_action(method: str, path: str, action: str | None, version: str | None) -> None:
    """The gateway's routing: one action, one version, POST on the root path."""
    if method != "POST" or path != "/" or action != ACTION:
        raise OcrError("InvalidAction.NotFound")
    if version != VERSION:
        raise OcrError("InvalidVersion")


def fault_target(request: Request) -> Target:
    """What a request is, for fault rules: its action (when the gateway would route it) and, for an image
    passed by URL, the object key in that URL (path-style ``/bucket/key``, as the local stack signs them)."""
    routed = request.method == "POST" and request.raw_path == "/" and request.header("x-acs-action") == ACTION
    url = dict(parse_qsl(request.raw_query, keep_blank_values=True)).get("Url") or ""
    key = unquote(urlsplit(url).path).lstrip("/").partition("/")[2] if url else ""
    return Target(ACTION if routed else "", key)
