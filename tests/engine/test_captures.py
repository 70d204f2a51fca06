"""A permit in any capture a person sends, and nothing else: the card found at any scale, its block decided
before any value is taken, a permit's back and other documents refused (issue 22). The rules are pinned on
hand-made lines and images; a few end-to-end reads keep the suite cheap."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from permit_ocr_local.engine import Engine, EngineError, block, geometry, search
from permit_ocr_local.engine.cues import is_stamp, other_document, title_of
from permit_ocr_local.engine.layout import Line, extract
from permit_ocr_local.synth import generate, not_a_permit


def _box(x: float, y: float, w: float, h: float) -> np.ndarray:
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)


def _read(engine: Engine, seed: int, kind: str, capture: str, family: str) -> tuple[int, dict[str, tuple[str, str]]]:
    """How many of a generated capture's fields the engine reads right, and (read, true) for the others."""
    image, truth = generate(seed, kind, (capture,), family)
    got = engine.recognize(image)["data"]
    misses = {k: (got[k], v) for k, v in truth["data"].items() if got[k] != v}
    return len(truth["data"]) - len(misses), misses


def _line(text: str, x: float, y: float, h: float = 30) -> Line:
    return Line(_box(x, y, len(text) * h * 0.8, h), text, 0.99)


def test_a_sentence_that_names_the_permit_is_not_its_title() -> None:
    assert title_of("港澳居民来往内地通行证") == "港澳居民来往内地通行证"
    assert title_of("港澳居民来往内地通行证（非中国籍）") == "港澳居民来往内地通行证（非中国籍）"
    assert title_of("一、本证是港澳居民来往内地所持有的旅行证件。") is None
    assert title_of("本证是港澳居民来往内地所持有的旅行证件") is None  # punctuation lost: still too long


def test_the_english_title_under_the_chinese_one_names_the_permit_too() -> None:
    assert title_of("MAINLAND TRAVEL PERMIT FOR HONG KONG AND MACAO RESIDENTS") == "港澳居民来往内地通行证"
    assert title_of("MAlNLAND TRAVEL PERMlT FOR TAIWAN RESlDENTS") == "台湾居民来往大陆通行证"  # l for I
    assert title_of("MAINLAND TRAVEL PERMIT") is None  # which permit it does not say
    assert title_of("PEOPLE'S REPUBLIC OF CHINA PASSPORT") is None


def test_a_clean_card_whose_chinese_title_was_not_read_is_read_once(engine: Engine) -> None:
    """The detector boxed the Chinese title with the English one under it and the recognizer read the English:
    without a title every read ranked below 'good', and all four candidates were read (2.4 s for a clean
    card, studied seed 7)."""
    image, truth = generate(703003, "hk", (), "bare")
    out = engine.recognize(image)
    assert out["data"] == truth["data"]
    assert engine.work["rec_columns"] < 4000  # one read of the card (four were 9,509 columns)


def test_another_documents_words_or_running_text_say_it_is_not_a_permits_front() -> None:
    assert other_document(["中华人民共和国  护照  PASSPORT"])
    assert other_document(["中华人民共和国居民身份证"])
    notes = ["二、本证只限持证人本人使用，不得涂改、转让。", "三、持证人应妥善保管本证，遗失应及时报告。"]
    assert other_document(notes)
    assert not other_document(["港澳居民来往内地通行证", "姓名 林嘉欣", "2020.01.01-2029.12.31"])


def test_a_passport_page_without_a_permit_title_is_no_permit_even_with_its_authority_and_number() -> None:
    lines = [_line("中华人民共和国 护照 PASSPORT", 200, 10), _line("H12345678", 500, 80), _line("刘磊文", 250, 140),
             _line("LIU,LEIWEN", 250, 200), _line("公安部出入境管理局", 250, 320), _line("男/M", 250, 260)]
    fields, family = extract(lines)
    assert family is None and fields == {}


def test_the_text_block_leaves_out_a_status_bar_and_buttons_far_from_the_card() -> None:
    card = [_box(40, 400 + 40 * i, 300, 20) for i in range(7)]
    ui = [_box(20, 10, 60, 20), _box(380, 10, 60, 20), _box(40, 1000, 60, 20), _box(300, 1000, 60, 20)]
    kept = geometry.text_block(card + ui)
    assert len(kept) == 7 and all(any(k is c for c in card) for k in kept)


def test_a_small_card_on_a_blank_page_is_a_region_of_detail_and_the_lid_shadow_is_not() -> None:
    page = np.full((1754, 1240, 3), 245, np.uint8)
    page[:, :30] = 20  # the copier lid's dark edge
    for i in range(7):  # a card's worth of print, 300 px wide, a third of the page
        cv2.putText(page, "2019.12.14 H12345678", (120, 260 + 30 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1)
    (x0, y0, x1, y1), *_ = search.detail_regions(page)
    assert x0 <= 120 and y0 <= 245 and x1 >= 330 and y1 >= 440
    assert x1 - x0 < 0.6 * 1240 and y1 - y0 < 0.4 * 1754


def test_a_line_in_a_stamps_bright_colour_is_not_the_cards_print() -> None:
    card = np.full((536, 848, 3), 225, np.uint8)
    boxes = []
    for i in range(6):
        cv2.putText(card, "1990.03.05 ABC", (60, 60 + 60 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (30, 30, 40), 2)
        boxes.append(_box(55, 35 + 60 * i, 260, 34))
    cv2.putText(card, "2024/11/30 14:09", (500, 500), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (40, 150, 255), 2)  # BGR orange
    stamp = _box(495, 475, 280, 34)
    kept = block.printed(card, [*boxes, stamp])
    assert len(kept) == 6 and not any(k is stamp for k in kept)


def test_a_dim_photo_is_brightened_and_a_bright_one_left_as_is() -> None:
    dim = np.random.default_rng(1).integers(5, 110, (200, 300, 3)).astype(np.uint8)
    assert search.normalized(dim).max() > 200
    bright = np.random.default_rng(1).integers(5, 250, (200, 300, 3)).astype(np.uint8)
    assert search.normalized(bright) is bright


@pytest.mark.parametrize("what", ["permit-back", "passport"])
def test_a_permits_back_and_a_passport_page_are_refused(engine: Engine, what: str) -> None:
    """The back's notes name the permit in a sentence (本证是港澳居民来往内地…), and it may print the number in
    a machine-readable line; a passport prints the same authority, a name and a letter with 8 digits."""
    with pytest.raises(EngineError) as err:
        engine.recognize(not_a_permit(3, what, ""))
    assert err.value.code == "unmatchedImageType"


def test_a_card_a_third_of_a_copier_page_wide_is_found_and_read(engine: Engine) -> None:
    image, truth = generate(2205, "hk", ("copier",), "bold")
    out = engine.recognize(image)
    right = sum(out["data"][k] == v for k, v in truth["data"].items())
    assert right >= 8, {k: (out["data"][k], v) for k, v in truth["data"].items() if out["data"][k] != v}


def test_a_screenshots_clock_and_date_stamp_are_never_values_taken_for_sure(engine: Engine) -> None:
    """A phone viewer's screenshot: status-bar clock, the photo's date as a title and a stamp by the card."""
    image, truth = generate(2207, "hk", ("screenshot",), "classic")
    out = engine.recognize(image)
    wrong = [kv for kv in out["prism_keyValueInfo"] if kv["value"] != truth["data"][kv["key"]]]
    assert len(wrong) <= 2 and all(kv["valueProb"] < 90 for kv in wrong), wrong


def test_a_lid_shadow_along_two_edges_is_not_a_region_and_does_not_swallow_the_card() -> None:
    """A copier lid open along the left and the bottom leaves an L of dark, mottled band that spans the page:
    as one blob joined with the card it made a region as large as the page, which is none (two studied copier
    pages were refused or read from the whole page so)."""
    page = np.full((1754, 1240, 3), 245, np.uint8)
    mottled = np.random.default_rng(0).random(page.shape[:2]) < 0.5
    page[:, :45][mottled[:, :45]] = 20
    page[-60:][mottled[-60:]] = 20
    for i in range(7):
        cv2.putText(page, "2019.12.14 H12345678", (120, 760 + 30 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1)
    regions = search.detail_regions(page)
    assert regions, "the card's print is a region of detail"
    x0, y0, x1, y1 = regions[0]
    assert x0 <= 120 and y0 <= 745 and x1 >= 330 and y1 >= 940
    assert x1 - x0 < 0.6 * 1240 and y1 - y0 < 0.4 * 1754


def test_a_card_in_a_corner_beside_a_sheet_of_paper_is_found_by_looking_closer_at_its_title(engine: Engine) -> None:
    """A 440-px card in the corner of a 2000-px photo, touching a sheet of paper: the region of detail is the
    card and the sheet together, half the frame, and at 640 px only the card's title shows. The window around
    the title, looked at again, holds the card (this studied corner photo was refused)."""
    image, truth = generate(1153002, "taiwan", ("corner",), "compact")
    out = engine.recognize(image)
    right = sum(out["data"][k] == v for k, v in truth["data"].items())
    assert right >= 8, {k: (out["data"][k], v) for k, v in truth["data"].items() if out["data"][k] != v}


def test_a_window_around_text_seen_too_small_holds_a_card_around_its_title() -> None:
    title = _box(1590, 35, 200, 14)  # a card's title, 440 px wide card, at the top right of a 2000 x 1125 frame
    x0, y0, x1, y1 = search.around_text([title], (1125, 2000))
    assert x0 <= 1470 and y0 == 0 and x1 >= 1900 and y1 >= 320  # the whole card fits
    assert (x1 - x0) * (y1 - y0) < 0.2 * 2000 * 1125
    assert search.around_text([_box(0, 0, 1500, 40)], (1125, 2000)) is None  # that is the frame: nothing closer


def test_a_block_of_print_seen_as_one_box_is_looked_at_in_a_window_its_size() -> None:
    """A card a fifth of a 3000 x 4000 photo, seen at 640 px, is one box as tall as the card: no line, so the
    window is half as large again as the box (20 of its 'line heights' would be more than the frame)."""
    card = _box(80, 30, 800, 500)
    x0, y0, x1, y1 = search.around_text([card], (4000, 3000))
    assert x0 <= 80 and y0 == 0 and x1 >= 880 and y1 >= 530  # the whole card fits
    assert (x1 - x0) * (y1 - y0) < 0.15 * 3000 * 4000


def test_text_blocks_keep_a_cards_rows_apart_from_ruled_lines_on_a_sheet_beside_it() -> None:
    rows = [_box(100, 100 + 40 * i, 300, 20) for i in range(5)]  # a card's rows, a line apart
    ruled = [_box(1200, 900, 600, 6), _box(1200, 912, 600, 6)]  # a sheet's ruled lines, far off
    stamp = [_box(2500, 2500, 60, 20)]
    groups = geometry.text_blocks(rows + ruled + stamp)
    assert [len(g) for g in groups] == [5, 2, 1]  # most text first
    assert all(any(g is r for r in rows) for g in groups[0])
    # seen small, a sheet of paper is a box as tall as itself: by the median height it would join the card's rows
    sheets = [_box(500, 0, 900, 700), _box(1500, 0, 900, 700), _box(500, 800, 900, 700)]
    assert [len(g) for g in geometry.text_blocks(rows[:2] + sheets)] == [5]
    assert [len(g) for g in geometry.text_blocks(rows[:2] + sheets, own_heights=True)] == [3, 2]


def _turned(box: np.ndarray, degrees: float, about: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    a = np.deg2rad(degrees)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]], np.float32)  # row vectors: p @ rot
    return ((box - np.float32(about)) @ rot + np.float32(about)).astype(np.float32)


def test_a_level_caption_below_a_tilted_card_is_not_the_cards_text() -> None:
    """A viewer's caption ("2024-07-18 22:07") a line below a card photographed 16 degrees turned joins the
    card's block (it is that close), but a line turned away from the block's is not the card's print: the card's
    extent took in the caption and the sheet of paper beside it (studied screenshot 751006)."""
    rows = [_turned(_box(100, 100 + 40 * i, 300, 20), -16, (250, 200)) for i in range(6)]
    caption = _box(20, 330, 200, 20)
    assert [len(b) for b in geometry.text_blocks([*rows, caption])] == [7]  # near enough to join the block
    angle = geometry.text_direction(rows)
    extent = geometry.text_extent([*rows, caption], angle, 0.0)
    assert np.abs(extent - geometry.text_extent(rows, angle, 0.0)).max() < 1.0  # the caption changed nothing
    # a line as turned as the card's is its print, and widens the extent
    turned = _turned(caption, -16, (250, 200))
    assert np.abs(geometry.text_extent([*rows, turned], angle, 0.0) - geometry.text_extent(rows, angle, 0.0)).max() > 10


def test_a_card_a_fifth_of_a_large_photo_on_a_patterned_cloth_is_found_before_refusing(engine: Engine) -> None:
    """The cloth's pattern is detail everywhere, so no region stands out, and at 640 px the card shows no
    line; the finer look at the whole frame sees its title, and a window around it holds the card (this
    studied photo was refused)."""
    right, misses = _read(engine, 6753004, "macao", "corner", "inline")
    assert right >= 9, misses


def test_a_card_seen_as_one_box_in_a_large_photo_is_read_from_a_window_around_it(engine: Engine) -> None:
    """At 640 px a 3000 x 4000 photo shows its card, in a corner, as one box of run-together print (this
    studied photo was refused)."""
    right, misses = _read(engine, 7153005, "taiwan", "corner", "serif")
    assert right >= 9, misses


def test_a_card_below_sheets_of_paper_the_detector_boxed_whole_is_found_before_refusing(engine: Engine) -> None:
    """A 2000 x 2666 photo, the card at the bottom under three sheets of paper that the detector boxes whole: four
    such boxes are no block of print (no lines), and at 1120 px they must not join the card's title into one
    block as large as the frame (this photo of seed 79, never studied before the attack, was refused)."""
    right, misses = _read(engine, 7953005, "taiwan", "corner", "serif")
    assert right >= 9, misses


def test_a_box_no_wider_than_three_of_its_heights_is_no_line() -> None:
    assert search.is_line(_box(0, 0, 300, 20))  # a title
    assert not search.is_line(_box(0, 0, 900, 800))  # a sheet of paper boxed whole
    assert not search.is_line(_box(0, 0, 800, 500))  # a card seen as one block


def test_a_line_that_only_shares_a_place_word_with_the_title_is_not_the_title() -> None:
    """Fragments of the back's notes, read from a blurred phone photo (持证人须知 read as 持证人频知): they
    name 内地 but are no read of the title, which made the back a permit with its title and a name."""
    assert title_of("本派源施来注内地有的") is None
    assert title_of("本派源施来注内地特有的展行证") is None
    assert title_of("海渍居民来征内地易行证") == "港澳居民来往内地通行证"  # a copy's poor read of the title
    assert title_of("台湾居民来往") == "台湾居民来往大陆通行证"  # the rest off the edge


def test_a_blurred_phone_photo_of_a_permits_back_is_refused(engine: Engine) -> None:
    with pytest.raises(EngineError) as err:
        engine.recognize(not_a_permit(1190001, "permit-back", "phone"))
    assert err.value.code == "unmatchedImageType"


def test_a_time_of_day_marks_a_stamp_or_a_clock_never_a_permits_print() -> None:
    assert is_stamp("2025/01/2716:01") and is_stamp("16:01") and is_stamp("2025.01.27 16:01")
    assert not is_stamp("2020.01.01:2030.01.01")  # a period whose dash was read as a colon
    assert not is_stamp("签发次数:01") and not is_stamp("2025-01-27")


def test_a_date_stamped_with_its_time_on_the_card_is_not_the_birth_date() -> None:
    """A studied screenshot: the camera's stamp 2025/01/27 16:01 lay inside the card's outline and was read
    as the birth date (the real one misread as 2978.03.13)."""
    lines = [_line("港澳居民来往内地通行证", 200, 10), _line("2978.03.13", 250, 200),
             _line("2022.12.06-2032.12.05", 250, 260), _line("公安部出入境管理局", 250, 320),
             _line("H43252338", 250, 380), _line("2025/01/2716:01", 500, 470)]
    fields, family = extract(lines)
    assert family == "hk_macao" and "birthDate" not in fields


def test_two_outlines_of_the_same_card_are_one_card_whichever_corner_they_start_at() -> None:
    card = _box(100, 200, 856, 540)
    assert geometry.same_quad(card, np.roll(card, 1, axis=0) + 1.0)  # 1 px on an 856-px card, another start
    assert not geometry.same_quad(card, card + 8.0)  # 1 % off: warped and detected a little differently
    assert not geometry.same_quad(card, card + np.array([40, 0], np.float32))  # the text's extent beside the outline
    assert not geometry.same_quad(card, _box(100, 200, 856, 500))


def test_a_card_two_looks_outline_alike_is_read_once(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dim photo (studied seed 7): the frame's look and a region's look outlined the same card, and it was
    read three times over, each time with a finer detection (2 s for one image)."""
    outlines: list[np.ndarray] = []
    read_card = Engine._read_card

    def counted(self: Engine, ocr: object, img: np.ndarray, quad: np.ndarray):  # type: ignore[no-untyped-def]
        outlines.append(quad)
        return read_card(self, ocr, img, quad)  # type: ignore[arg-type]

    monkeypatch.setattr(Engine, "_read_card", counted)
    engine.recognize(generate(752004, "macao", ("lowlight",), "compact")[0])
    assert outlines
    assert not any(geometry.same_quad(a, b) for i, a in enumerate(outlines) for b in outlines[:i])
