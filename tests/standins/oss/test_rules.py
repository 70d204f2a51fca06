"""The OSS stand-in's pure rules (permit_ocr_local/standins/oss/rules.py): the documented Range table for a 1,000-byte
object with and without ``x-oss-range-behavior: standard``, and the If-* evaluation order."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from permit_ocr_local.standins.oss import rules
from permit_ocr_local.standins.oss.errors import InvalidRange, OperationNotImplemented, PreconditionFailed

WHOLE = None  # serve the whole object with 200
REFUSED = "416"


@pytest.mark.parametrize(("spec", "default", "standard"), [
    # the examples of OSS's "Use HTTP Range requests" page and the PHP v2 range page, object of 1,000 bytes
    ("bytes=0-499", (0, 499), (0, 499)),
    ("bytes=500-999", (500, 999), (500, 999)),
    ("bytes=-500", (500, 999), (500, 999)),
    ("bytes=500-", (500, 999), (500, 999)),
    ("bytes=0-", (0, 999), (0, 999)),
    ("bytes=0-1000", WHOLE, (0, 999)),
    ("bytes=500-2000", WHOLE, (500, 999)),
    ("bytes=1000-2000", WHOLE, REFUSED),
    ("bytes=1000-", WHOLE, REFUSED),
    ("bytes=-2000", WHOLE, (0, 999)),
    ("byte=0-499", WHOLE, WHOLE),
    ("bytes=0-499,500-999", (0, 499), REFUSED),
    ("bytes=499-0", WHOLE, WHOLE),
    ("bytes=-0", WHOLE, REFUSED),
])
def test_range_table_for_a_1000_byte_object(spec: str, default: object, standard: object) -> None:
    for behaviour, expected in ((False, default), (True, standard)):
        if expected == REFUSED:
            with pytest.raises(InvalidRange):
                rules.byte_range(spec, 1000, standard=behaviour)
        else:
            assert rules.byte_range(spec, 1000, standard=behaviour) == expected, (spec, behaviour)


def test_any_range_on_an_empty_object_is_the_whole_empty_object_by_default() -> None:
    assert all(rules.byte_range(s, 0, standard=False) is None for s in ("bytes=0-", "bytes=0-0", "bytes=-1"))


ETAG, MTIME = "5D41402ABC4B2A76B9719D911017C592", 1_700_000_000.0
AT, BEFORE, AFTER = (formatdate(MTIME + d, usegmt=True) for d in (0, -1, 1))


@pytest.mark.parametrize(("headers", "outcome"), [
    ({}, "200"),
    ({"if_match": f'"{ETAG}"'}, "200"),
    ({"if_match": ETAG}, "200"),
    ({"if_match": '"OTHER", "' + ETAG + '"'}, "200"),
    ({"if_match": "*"}, "200"),
    ({"if_match": '"OTHER"'}, "412"),
    ({"if_none_match": f'"{ETAG}"'}, "304"),
    ({"if_none_match": '"OTHER"'}, "200"),
    ({"if_modified_since": AT}, "304"),
    ({"if_modified_since": BEFORE}, "200"),
    ({"if_modified_since": "garbage"}, "200"),
    ({"if_unmodified_since": AT}, "200"),
    ({"if_unmodified_since": BEFORE}, "412"),
    ({"if_match": f'"{ETAG}"', "if_unmodified_since": BEFORE}, "200"),  # If-Match wins (RFC 7232 §6)
    ({"if_none_match": '"OTHER"', "if_modified_since": AFTER}, "200"),  # If-None-Match wins
    ({"if_match": '"OTHER"', "if_none_match": f'"{ETAG}"'}, "412"),  # 412 before 304
])
def test_preconditions(headers: dict[str, str], outcome: str) -> None:
    args = {"if_match": "", "if_none_match": "", "if_modified_since": "", "if_unmodified_since": "", **headers}
    if outcome == "412":
        with pytest.raises(PreconditionFailed):
            rules.not_modified(**args, etag=ETAG, last_modified=MTIME)
    else:
        assert rules.not_modified(**args, etag=ETAG, last_modified=MTIME) is (outcome == "304")


@pytest.mark.parametrize(("method", "key", "query", "headers", "op"), [
    ("GET", "k", [], {}, "GetObject"),
    ("GET", "k", ["response-content-type", "x-oss-signature"], {}, "GetObject"),
    ("HEAD", "k", ["objectMeta"], {}, "GetObjectMeta"),
    ("GET", "", ["list-type", "prefix", "max-keys"], {}, "ListObjectsV2"),
    ("PUT", "k", [], {"x-oss-object-acl": ["private"], "x-oss-forbid-overwrite": ["true"]}, "PutObject"),
    ("PUT", "", [], {}, "PutBucket"),
])
def test_modelled_operations_are_named(method: str, key: str, query: list[str],
                                       headers: dict[str, list[str]], op: str) -> None:
    assert rules.operation(method, key, query, headers) == op


@pytest.mark.parametrize(("method", "key", "query", "headers"), [
    ("PUT", "k", ["acl"], {}), ("GET", "k", ["tagging"], {}), ("POST", "k", ["append", "position"], {}),
    ("PUT", "k", [], {"x-oss-copy-source": ["/b/src"]}), ("GET", "", [], {}), ("DELETE", "", [], {}),
    ("HEAD", "", [], {}), ("PUT", "k", ["partNumber", "uploadId"], {}), ("GET", "k", ["objectMeta"], {}),
    ("PUT", "k", [], {"if-none-match": ["*"]}),
])
def test_unmodelled_requests_are_not_implemented(method: str, key: str, query: list[str],
                                                 headers: dict[str, list[str]]) -> None:
    with pytest.raises(OperationNotImplemented):
        rules.operation(method, key, query, headers)
