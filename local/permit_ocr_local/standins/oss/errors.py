"""OSS errors and their wire shape (oss.md §5): an XML body, or on HEAD an empty body plus ``x-oss-err``.

EC values marked [doc] are from oss.md; the others are plausible placeholders, as no caller branches on them.
"""

from __future__ import annotations

import base64
from xml.sax.saxutils import escape

from ..http import Response


class OssError(Exception):
    status = 400
    code = "InvalidArgument"
    message = "Invalid argument."
    ec = "0000-00000000"

    def __init__(self, message: str | None = None, **fields: str) -> None:
        self.message = message or type(self).message
        self.fields = fields  # extra XML elements, e.g. Key, Bucket, StringToSign
        super().__init__(self.message)


class InvalidArgument(OssError):
    ec = "0002-00000232"  # [doc] for x-oss-expires out of range


class InvalidObjectName(OssError):
    code, message, ec = "InvalidObjectName", "The specified object name is not valid.", "0016-00000005"


class InvalidBucketName(OssError):
    code, message, ec = "InvalidBucketName", "The specified bucket is not valid.", "0015-00000001"


class InvalidDigest(OssError):
    code, message, ec = "InvalidDigest", "The Content-MD5 you specified is not valid.", "0016-00000202"


class AccessDenied(OssError):
    status, code, message, ec = 403, "AccessDenied", "Request has expired.", "0002-00000069"


class RamDenied(AccessDenied):
    message = "You are not authorized to do this action. You should be authorized by RAM."
    ec = "0003-00000001"  # [inferred] the RAM-denial family; not checked against real OSS


class SignatureDoesNotMatch(OssError):
    status, code, ec = 403, "SignatureDoesNotMatch", "0002-00000040"
    message = "The request signature we calculated does not match the signature you provided."


class InvalidAccessKeyId(OssError):
    status, code, ec = 403, "InvalidAccessKeyId", "0002-00000003"
    message = "The OSS Access Key Id you provided does not exist in our records."


class InvalidSecurityToken(OssError):
    status, code, ec = 403, "InvalidSecurityToken", "0002-00000006"
    message = "The security token you provided is invalid."


class SecurityTokenExpired(OssError):
    status, code, ec = 403, "SecurityTokenExpired", "0002-00000007"  # [doc]
    message = "The security token you provided has expired."


class RequestTimeTooSkewed(OssError):
    status, code, ec = 403, "RequestTimeTooSkewed", "0002-00000504"
    message = "The difference between the request time and the current time is too large."


class NoSuchBucket(OssError):
    status, code, message, ec = 404, "NoSuchBucket", "The specified bucket does not exist.", "0015-00000101"


class NoSuchKey(OssError):
    status, code, message, ec = 404, "NoSuchKey", "The specified key does not exist.", "0026-00000001"  # [doc]


class MethodNotAllowed(OssError):
    status, code, ec = 405, "MethodNotAllowed", "0000-00000405"
    message = "The specified method is not allowed against this resource."


class FileAlreadyExists(OssError):
    status, code, ec = 409, "FileAlreadyExists", "0016-00000708"
    message = "The object you specified already exists and can not be overwritten."


class InvalidRange(OssError):
    status, code, message, ec = 416, "InvalidRange", "The requested range cannot be satisfied.", "0014-00000001"


class PreconditionFailed(OssError):
    # message and EC as OSS documents them (help "http status code 412", EC 0017-00001001)
    status, code, ec = 412, "PreconditionFailed", "0017-00001001"
    message = "At least one of the pre-conditions you specified did not hold."


class MalformedXML(OssError):
    code, ec = "MalformedXML", "0000-00000400"
    message = "The XML you provided was not well-formed or did not validate against our published schema."


class InvalidObjectState(OssError):
    """GetObject of an Archive, Cold Archive or Deep Cold Archive object that is not restored: [doc] 403,
    code, message (OSS "HTTP 403 errors" and "The operation is not valid for the object's state") and EC
    (help page 0016-00000404)."""
    status, code, message, ec = 403, "InvalidObjectState", "The operation is not valid for the object's state", \
        "0016-00000404"


class KmsForbidden(AccessDenied):
    """An SSE-KMS object whose key the requester may not use: [doc] 403 AccessDenied "This request is forbidden
    by kms" (OSS "HTTP status code 403", and the server-side encryption notes); the EC is [inferred]."""
    message, ec = "This request is forbidden by kms.", "0005-00000201"


class KmsKeyDisabled(OssError):
    """An SSE-KMS object whose key is disabled: [doc] 409 with EC 0005-00000214 (OSS help page of that EC:
    "the specified key is disabled"). OSS does not document the Code string: [inferred] a name of ours, with
    KMS's own message for its Rejected.Disabled (409). Callers should branch on the status, not this code."""
    status, code, ec = 409, "KmsKeyDisabled", "0005-00000214"
    message = "The request was rejected because the key state is Disabled."


class OperationNotImplemented(OssError):
    """An operation, sub-resource or header the stand-in does not model: refused, never half-served."""
    status, code, ec = 501, "NotImplemented", "0000-00000501"
    message = "A header or query you provided implies functionality that is not implemented."


# what an injected fault looks like (common/faults.py decides when; these say how)
_INJECTED = {
    429: ("TooManyRequests", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("ServiceUnavailable", "Please reduce your request rate."),
}


def error_xml(err: OssError, request_id: str, host_id: str) -> bytes:
    parts = [f"<Code>{escape(err.code)}</Code>", f"<Message>{escape(err.message)}</Message>",
             f"<RequestId>{request_id}</RequestId>", f"<HostId>{escape(host_id)}</HostId>"]
    parts += [f"<{name}>{escape(value)}</{name}>" for name, value in err.fields.items()]
    parts += [f"<EC>{err.ec}</EC>", f"<RecommendDoc>https://api.aliyun.com/troubleshoot?q={err.ec}</RecommendDoc>"]
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n  ' + "\n  ".join(parts) + "\n</Error>\n").encode()


def error_response(err: OssError, request_id: str, host_id: str, *, head: bool,
                   base_headers: list[tuple[str, str]]) -> Response:
    """HEAD has no body, so the SDKs read the same XML from the base64 ``x-oss-err`` header (§5.2)."""
    body = error_xml(err, request_id, host_id)
    headers = [*base_headers, ("Content-Type", "application/xml"), ("x-oss-ec", err.ec)]
    if head:
        return Response(err.status, [*headers, ("x-oss-err", base64.b64encode(body).decode()),
                                     ("Content-Length", "0")])
    return Response(err.status, headers, body)


def _known(cls: type[OssError]) -> dict[str, type[OssError]]:
    """Every error class by its code (the first class found for a code wins)."""
    out: dict[str, type[OssError]] = {}
    for sub in cls.__subclasses__():
        out.setdefault(sub.code, sub)
        for code, deeper in _known(sub).items():
            out.setdefault(code, deeper)
    return out


def injected_error(status: int, code: str | None = None, message: str | None = None) -> OssError:
    """An injected fault in OSS's shape: a code the stand-in knows keeps its usual message and EC."""
    # an injected AccessDenied reads as a permission refusal (RAM's), not as the expired-URL one
    known = RamDenied if code == "AccessDenied" else _known(OssError).get(code or "")
    default_code, default_message = _INJECTED.get(status, ("InternalError", f"Injected fault {status}."))
    err = OssError(message or (known.message if known else default_message))
    err.status, err.code = status, code or default_code
    err.ec = known.ec if known else f"0000-00000{status}"
    return err

