"""Finding the card in a phone photo (desk clutter, perspective, lighting, glare, blur, JPEG), and refusing
images that hold no card."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from permit_ocr_local.engine import Engine, EngineError, geometry
from permit_ocr_local.synth import desk_photo, generate


def _corner_error(found: dict[str, int], truth: list[dict[str, float]], w: int, h: int) -> float:
    got = [(found[f"x{i}"], found[f"y{i}"]) for i in range(4)]
    return max(math.hypot(x - t["x"], y - t["y"]) for (x, y), t in zip(got, truth, strict=True)) / math.hypot(w, h)


PHOTOS = [(11, "classic"), (12, "inline"), (13, "bare"), (14, "serif"), (15, "merged"), (16, "bold")]


def test_card_found_in_phone_photos(engine: Engine) -> None:
    """Every photo reads; the outline itself is exact on most (seed 11's card runs into the frame's top
    edge on a background of its colour: the text's extent stands in, and the fields still read)."""
    exact = 0
    for seed, family in PHOTOS:
        image, truth = generate(seed, None, ("phone",), family)
        assert 600 <= truth["width"] <= 700
        out = engine.recognize(image)
        exact += _corner_error(out["sliceRect"], truth["card"], truth["width"], truth["height"]) < 0.06
        right = sum(out["data"][k] == v for k, v in truth["data"].items())
        assert right >= 8, (seed, {k: (out["data"][k], v) for k, v in truth["data"].items() if out["data"][k] != v})
    assert exact >= len(PHOTOS) - 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_desk_without_a_card_is_refused(engine: Engine, seed: int) -> None:
    with pytest.raises(EngineError) as err:
        engine.recognize(desk_photo(seed))
    assert err.value.code == "unmatchedImageType"


def test_a_page_of_unrelated_text_is_refused(engine: Engine) -> None:
    page = np.full((600, 800, 3), 250, np.uint8)
    for i, text in enumerate(("Meeting notes 2024", "Bring the report", "Call back at 10:30", "Total 1234.50")):
        cv2.putText(page, text, (40, 80 + 90 * i), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (20, 20, 20), 3)
    _ok, buf = cv2.imencode(".jpg", page)
    with pytest.raises(EngineError) as err:
        engine.recognize(buf.tobytes())
    assert err.value.code == "unmatchedImageType"


def test_an_oversized_image_is_an_illegal_size_like_the_function_says(engine: Engine) -> None:
    _ok, buf = cv2.imencode(".png", np.zeros((20, 8200, 3), np.uint8))
    with pytest.raises(EngineError) as err:
        engine.recognize(buf.tobytes())
    assert err.value.code == "illegalImageSize"


def _box(x: float, y: float, w: float, h: float, deg: float = 0.0) -> np.ndarray:
    return cv2.boxPoints(((x, y), (w, h), deg)).astype(np.float32)


def test_text_direction_follows_the_lines_and_ignores_single_characters() -> None:
    from permit_ocr_local.engine.geometry import text_direction

    lines = [_box(200, 100 + 40 * i, 180, 30, 20) for i in range(4)] + [_box(400, 100, 30, 30, 45)]
    assert abs(math.degrees(text_direction(lines) or 0.0) - 20) < 1.5
    assert text_direction([_box(50, 50, 30, 30)]) is None


def test_an_outline_across_the_text_lines_is_not_the_card() -> None:
    """A tall, card-proportioned blob (part of the card and the desk) holds the text but crosses its lines."""
    from permit_ocr_local.engine.geometry import find_card

    img = np.full((600, 800, 3), 60, np.uint8)
    cv2.rectangle(img, (250, 80), (550, 560), (235, 235, 228), -1)  # upright 300 x 480: long side vertical
    centres = np.array([[400, 200 + 30 * i] for i in range(6)], np.float32)
    assert find_card(img, centres, 0.0) is None  # the lines run across it: not the card's outline
    assert find_card(img, centres, math.pi / 2) is not None  # lines along its long side: a card seen sideways


def test_text_extent_stands_in_with_the_card_proportions_along_the_lines() -> None:
    """Text beside a photo is a tall block; the stand-in widens it so the lines are not stretched."""
    from permit_ocr_local.engine.geometry import CARD_RATIO, text_extent

    boxes = [_box(300, 150 + 40 * i, 160, 26) for i in range(8)]  # 160 wide, ~300 high
    q = text_extent(boxes, 0.0, 10.0)
    w, h = np.linalg.norm(q[1] - q[0]), np.linalg.norm(q[3] - q[0])
    assert abs(w / h - CARD_RATIO) < 0.02 and abs(float(q[1][1] - q[0][1])) < 1


def test_small_print_is_read_only_when_needed() -> None:
    from permit_ocr_local.engine.block import split_print

    values_ = [_box(300, 100 + 60 * i, 200, 36) for i in range(6)]
    labels = [_box(300, 75 + 60 * i, 120, 18) for i in range(6)]
    large, small = split_print(values_ + labels)
    assert len(large) == 6 and len(small) == 6
    large, small = split_print(values_ + labels[:2])  # two small lines are not worth a second pass
    assert len(large) == 8 and small == []


@pytest.mark.parametrize(("seed", "family"), [(21, "classic"), (22, "ledger")])
def test_a_card_the_orientation_vote_turns_the_wrong_way_up_is_read_not_refused(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, seed: int, family: str) -> None:
    """Glare or blur can make the 0/180 vote lose narrowly (a phone photo of seed 11's bench was refused so):
    the engine refuses only a card it cannot read either way up. (A clear vote, 3 of 5 at full score, is
    not read turned as well since issue 22: that doubled the cost of every card that does not read.)"""
    ocr = engine._models()
    honest = ocr.upside_down
    # the vote, always wrong, by a narrow margin
    monkeypatch.setattr(ocr, "upside_down", lambda crops: -0.3 * honest(crops) or 0.5)
    image, truth = generate(seed, None, (), family)
    out = engine.recognize(image)
    right = sum(out["data"][k] == v for k, v in truth["data"].items())
    assert right >= 9, {k: (out["data"][k], v) for k, v in truth["data"].items() if out["data"][k] != v}


def test_an_outline_found_wrong_falls_back_to_the_texts_extent_before_any_refusal(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """An outline that holds the text's centres can still be the wrong shape (a seed-11 ledger photo was
    refused so); the text's own extent is tried before the image is refused."""
    image, truth = generate(23, None, ("phone",), "classic")

    def wrong_outline(img: np.ndarray, *_: object) -> np.ndarray:
        h, w = img.shape[:2]  # the left third of the image: part of the card at best
        return np.array([[0, 0], [w / 3, 0], [w / 3, h - 1], [0, h - 1]], np.float32)

    monkeypatch.setattr(geometry, "find_card", wrong_outline)
    out = engine.recognize(image)
    right = sum(out["data"][k] == v for k, v in truth["data"].items())
    assert right >= 8, {k: (out["data"][k], v) for k, v in truth["data"].items() if out["data"][k] != v}


def test_a_field_lost_at_the_first_detection_is_looked_for_again_finer(engine: Engine) -> None:
    """At 640 px a lone 女 merges with its 性别 Sex label into one box that reads as neither (a seed-7 ledger
    photo); a missing field brings a 960-px detection whose new boxes alone are read."""
    image, truth = generate(706106, "hk", ("phone",), "ledger")
    out = engine.recognize(image)
    assert out["data"]["sex"] == truth["data"]["sex"] == "女"
    assert "detect" in engine.stages


def test_the_finer_detection_reads_a_part_of_an_old_box_but_not_the_same_line_again() -> None:
    from permit_ocr_local.engine.geometry import covers as _covers

    label_and_value = _box(320, 120, 120, 45)  # centre, size
    assert not _covers(label_and_value, _box(357, 121, 31, 33))  # the lone 女 inside it is new
    assert _covers(label_and_value, _box(320, 121, 116, 42))  # the same line found again is not


def test_a_permit_whose_title_reads_but_little_else_is_answered_not_refused(engine: Engine) -> None:
    """Found by attacking the refusal rule with a turned phone photo (small type, perspective): only the title
    and a number or two read, and it was refused as "no permit". A read title is a permit: the answer carries
    it, and every field it could not read has valueProb 0, so the result goes to review."""
    image, truth = generate(5048, "hk", ("phone", "rot90"), "ledger")
    out = engine.recognize(image)
    assert out["data"]["permitType"] == truth["data"]["permitType"]
    unread = [kv for kv in out["prism_keyValueInfo"] if not kv["value"] and kv["key"] != "issuePlace"]
    assert unread and all(kv["valueProb"] == 0 for kv in unread)
