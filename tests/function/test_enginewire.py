"""The engine function's request and answer (permit_ocr.enginewire): the bytes travel as they are, and whatever
does not read as this format is refused in words, never guessed at."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permit_ocr import enginewire
from permit_ocr.enginewire import MAGIC, WireError, decode_answer, decode_request, encode_answer, encode_request


@given(st.binary(max_size=4096), st.booleans())
def test_any_image_bytes_travel_unchanged_with_their_options(image: bytes, figure: bool) -> None:
    request = decode_request(encode_request(image, output_figure=figure))
    assert (request.image, request.output_figure) == (image, figure)


def test_the_request_costs_the_image_plus_one_short_line_not_base64() -> None:
    image = bytes(range(256)) * 4096  # 1 MiB of every byte value
    assert len(encode_request(image)) - len(image) < 64


@pytest.mark.parametrize("event", [b"", b"{}", b"permit-ocr-engine/2\n{}\nxx", MAGIC + b"not json\nimg",
                                   MAGIC + b'{"outputFigure":"yes"}\nimg', MAGIC + b"x" * 2000])
def test_a_request_in_another_format_or_version_is_refused(event: bytes) -> None:
    with pytest.raises(WireError):
        decode_request(event)


def test_an_answer_carries_data_or_the_apis_error_code_and_the_engines_own_time() -> None:
    data = {"data": {"nameCn": "何郑"}, "prism_keyValueInfo": []}
    assert decode_answer(encode_answer(data, ms=321)) == enginewire.Answer(data, None, "", 321)
    refused = decode_answer(encode_answer(code="unmatchedImageType", message="no permit", ms=5))
    assert (refused.data, refused.code, refused.message) == (None, "unmatchedImageType", "no permit")


@pytest.mark.parametrize("raw", [b"", b"[]", b'{"v":2,"data":{}}', b'{"v":1}', b'{"v":1,"data":"x"}'])
def test_an_answer_that_is_not_this_format_is_refused(raw: bytes) -> None:
    with pytest.raises(WireError):
        decode_answer(raw)
