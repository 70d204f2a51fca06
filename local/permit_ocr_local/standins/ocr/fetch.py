"""The service's side of ``Url=``: it GETs the image itself, so a presigned URL is really fetched."""

from __future__ import annotations

import urllib.error
import urllib.request

from .errors import OcrError
from .rules import MAX_IMAGE_BYTES

# built once: build_opener makes a TLS context each time (~76 ms of CPU); never via an environment proxy
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, timeout_s: float) -> bytes:
    """GET the image as the service would: failures are IllegalImageUrl, a timeout is imageTimeOut."""
    if not url.lower().startswith(("http://", "https://")):
        raise OcrError("IllegalImageUrl")
    try:
        with _OPENER.open(url, timeout=timeout_s) as resp:
            data: bytes = resp.read(MAX_IMAGE_BYTES + 1)  # one byte over is enough to refuse
            return data
    except TimeoutError:  # socket.timeout is an alias since 3.10
        raise OcrError("imageTimeOut") from None
    except urllib.error.URLError as exc:  # HTTPError included: an expired or tampered presigned URL is 403
        if isinstance(getattr(exc, "reason", None), TimeoutError):
            raise OcrError("imageTimeOut") from None
        raise OcrError("IllegalImageUrl") from None
    except (OSError, ValueError):
        raise OcrError("IllegalImageUrl") from None
