"""MNS error replies (mns.md §1.3): XML with Code, Message, RequestId and HostId, all four of which the SDK
requires (a reply missing one is raised as ``RespDataDamaged`` instead of the real code)."""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape

from ..http import Request, Response

XMLNS = "http://mns.aliyuncs.com/doc/v1/"
VERSION = "2015-06-06"
CONTENT_TYPE = "text/xml;charset=utf-8"

# what an injected fault status looks like from real MNS (codes per the brief; real 5xx codes unverified)
_FAULT_CODES: dict[int, tuple[str, str]] = {
    429: ("Throttling", "Request was denied due to request throttling."),
    500: ("InternalError", "The service encountered an internal error."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
}


class MnsError(Exception):
    """A request MNS refuses; rendered by ``error_response``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def topic_not_exist() -> MnsError:
    return MnsError(404, "TopicNotExist", "The topic you provided does not exist.")


def new_request_id() -> str:
    return uuid.uuid4().hex[:24].upper()


def host_id(request: Request) -> str:
    return f"http://{request.header('host', '127.0.0.1')}"


def reply_headers(request_id: str) -> list[tuple[str, str]]:
    return [("Content-Type", CONTENT_TYPE), ("x-mns-request-id", request_id), ("x-mns-version", VERSION)]


def error_response(error: MnsError, request: Request) -> Response:
    rid = new_request_id()
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error xmlns="{XMLNS}">'
        f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
        f"<RequestId>{rid}</RequestId><HostId>{escape(host_id(request))}</HostId></Error>"
    )
    return Response(error.status, reply_headers(rid), body.encode())


def service_error(status: int, request: Request, code: str | None = None, message: str | None = None) -> Response:
    """The reply to an injected fault (``FaultPlan``), in MNS's error shape so the SDK raises the real code;
    ``code``/``message`` when a fault rule gives them."""
    usual_code, usual_message = _FAULT_CODES.get(status, ("InternalError", f"Injected fault {status}."))
    return error_response(MnsError(status, code or usual_code, message or code or usual_message),
                          request)
