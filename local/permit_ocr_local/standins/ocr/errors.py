"""OCR API errors in the real gateway's shape (ocr-api.md §9.3) and the injected-fault answers.

Statuses follow the documented table (§9.2); codes the table lacks are POP-gateway codes, noted where chosen.
"""

from __future__ import annotations

import uuid

from .. import http
from ..http import Request, Response

DEFAULT_HOST_ID = "ocr-api.cn-hangzhou.aliyuncs.com"
JSON_CONTENT_TYPE = "application/json;charset=utf-8"

# code -> (HTTP status, message). Messages are the documented English ones where the docs have them.
ERRORS: dict[str, tuple[int, str]] = {
    # gateway: signature and credentials (checked before OCR sees the request)
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "SignatureDoesNotMatch": (400, "The request signature we calculated does not match the signature you "
                                   "provided. Check your key and signing method."),
    # not in the OCR table; the POP gateway answers 404 "Specified access key is not found."
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "invalidStsToken": (400, "The security token you provided is invalid."),
    "InvalidSecurityToken.Expired": (400, "Specified SecurityToken is expired."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    "SignatureNonceUsed": (400, "The signature nounce is already in use."),
    "MissingSignatureNonce": (400, "SignatureNonce is mandatory for this action."),
    # a wrong action/method/path never reaches OCR: the gateway's 404 rather than OCR's illegalApiName
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "InvalidParameter": (400, "The specified parameter is not valid."),
    "noPermission": (401, "You are not authorized to perform this operation."),
    # OCR: request and image
    "imageUrlOrBodyEmpty": (400, "The image URL or body is empty."),
    "exceededImageUrlLength": (400, "The image URL length exceeds 2048 characters."),
    "IllegalImageUrl": (400, "The image URL is unavailable or has timed out."),
    "imageTimeOut": (400, "Get image data time out."),
    "exceededImageContent": (413, "The image content size exceeds the 10 MB limit."),
    "unsupportedImageFormat": (415, "The image format or content is not supported."),
    "illegalImageSize": (416, "The image size must not be less than 5px or greater than 8192px."),
    "unmatchedImageType": (400, "The image type does not match the API operation."),
    "illegalImageContent": (400, "The corresponding image content is missing."),
    # transient
    "Throttling.User": (429, "Request denied because the throttling threshold is reached."),
    "InternalError": (500, "The request processing has failed due to some unknown error."),
    "algorithmError": (503, "An algorithm error occurred."),
    "AlgorithmTimeout": (503, "The requested algorithm service is unavailable. Please try again with a smaller "
                              "image."),
    "ServiceUnavailable": (503, "Server error."),
    "ServiceTimeout": (504, "The requested service is timed out."),
}

_FAULT_CODES = {429: "Throttling.User", 500: "InternalError", 503: "ServiceUnavailable", 504: "ServiceTimeout"}


class OcrError(Exception):
    """One error answer; the status comes from ERRORS (unknown codes: 400, as most OCR codes are)."""

    def __init__(self, code: str, message: str | None = None, status: int | None = None) -> None:
        known_status, known_message = ERRORS.get(code, (400, code))
        self.code = code
        self.message = message or known_message
        self.status = status or known_status
        super().__init__(f"{self.code}: {self.message}")


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()


def host_id(request: Request | None) -> str:
    """The gateway echoes the host it was called on."""
    return (request.header("host") if request is not None else "") or DEFAULT_HOST_ID


def error_body(error: OcrError, request_id: str, host: str) -> dict[str, str]:
    return {
        "RequestId": request_id,
        "HostId": host,
        "Code": error.code,
        "Message": error.message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={error.code}&product=ocr-api&requestId={request_id}",
    }


def json_response(status: int, body: dict[str, str], request_id: str) -> Response:
    return http.json_response(status, body, JSON_CONTENT_TYPE, [("x-acs-request-id", request_id)])


def error_response(error: OcrError, request: Request | None, request_id: str | None = None) -> Response:
    rid = request_id or new_request_id()
    return json_response(error.status, error_body(error, rid, host_id(request)), rid)


def service_error(status: int, request: Request, code: str | None = None, message: str | None = None) -> Response:
    """The answer for an injected fault of ``status`` (StandinServer's ``service_error`` hook): ``code`` and
    ``message`` when a fault rule gives them (a known code keeps its documented message), else the usual code."""
    return error_response(OcrError(code or _FAULT_CODES.get(status, "InternalError"), message, status=status),
                          request)
