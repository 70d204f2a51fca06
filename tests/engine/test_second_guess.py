"""Second guesses: a misread character put right from the recognizer's own alternatives, only where
something independent (the name's other spelling, the sex vocabulary) says which guess is right.

Lines are built by hand in card coordinates with the alternatives a photo gave (bench seeds 7 and 11), so
each test pins one rule with no OCR involved; the last tests run the real recognizer.
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
from rapidocr.ch_ppocr_rec import TextRecInput

from permit_ocr_local.engine import Engine, geometry, second_guess
from permit_ocr_local.engine.layout import Field, Line, extract
from permit_ocr_local.engine.ocr import _alternatives, crop_quad
from permit_ocr_local.engine.second_guess import ReadLine, agree, fit, spellings
from permit_ocr_local.synth import degrade, generate
from permit_ocr_local.synth.fields import random_fields
from permit_ocr_local.synth.render import compose, render_card

Alts = list[list[tuple[str, float]]]


def read(text: str, x: float, y: float, guesses: dict[int, list[tuple[str, float]]] | None = None,
         h: float = 30, score: float = 0.95, unsure: tuple[int, ...] = ()) -> ReadLine:
    """A line read as ``text``, every character at 0.9 (those at ``unsure`` at 0.5); ``guesses`` adds the
    next guesses for the character at an index."""
    alts: Alts = [[(ch, 0.5 if i in unsure else 0.9), *(guesses or {}).get(i, [])] for i, ch in enumerate(text)]
    w = max(1, len(text)) * h * 0.8
    return ReadLine(np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32), text, score, alts)


def fields_of(lines: list[ReadLine]) -> dict[str, Field]:
    fields, _ = extract(list(lines))
    agree(lines, fields)
    second_guess.sex(lines, fields)
    return fields


def card(*name_lines: ReadLine, latin: str = "ZHAO,LEISI") -> list[ReadLine]:
    return [read("港澳居民来往内地通行证", 200, 10), *name_lines, read(latin, 250, 160),
            read("1985.09.11", 250, 230), read("2017.11.09-2027.11.08", 250, 300),
            read("公安部出入境管理局", 250, 370), read("M26446378", 250, 440)]


def test_a_misread_name_character_is_replaced_by_the_guess_whose_pinyin_spells_the_latin_name() -> None:
    fields = fields_of(card(read("姓名：赵温思", 250, 95, {4: [("磊", 0.08), ("品", 0.02)]})))
    name = fields["nameCn"]
    assert name.value == "赵磊思" and name.cue == "pinyin" and name.doubted
    assert fields["nameEn"].value == "ZHAO,LEISI" and not fields["nameEn"].doubted


def test_a_name_that_agrees_as_read_is_left_alone() -> None:
    fields = fields_of(card(read("姓名：赵磊思", 250, 95, {4: [("温", 0.3)]})))
    assert fields["nameCn"].value == "赵磊思" and fields["nameCn"].cue == "label+pattern"
    assert not fields["nameCn"].doubted


def test_a_latin_name_the_chinese_name_spells_as_read_is_confirmed_and_the_chinese_name_is_not() -> None:
    # every letter of ZHAO,LEISI checked by 赵磊思's pinyin: the Latin name is sure however it scored; the Chinese
    # name keeps its own score (a misread character may sound like the right one)
    lines = card(read("姓名：赵磊思", 250, 95, score=0.6))
    lines[2] = read("ZHAO,LEISI", 250, 160, score=0.7)
    fields = fields_of(lines)
    assert fields["nameEn"].score >= 0.97 and not fields["nameEn"].suspect
    assert fields["nameCn"].score < 0.97


def test_a_cantonese_latin_name_is_not_confirmed() -> None:
    lines = card(read("姓名：陈大文", 250, 95), latin="CHAN,TAIMAN")
    lines[2] = read("CHAN,TAIMAN", 250, 160, score=0.7)
    assert fields_of(lines)["nameEn"].score < 0.97


def test_a_cantonese_spelling_never_agrees_and_the_name_stays_as_read_with_its_trust() -> None:
    # 陈大文 / CHAN,TAIMAN: 太 (tai) is a likely guess for 大, but 陈 and 文 would need changing too
    lines = card(read("姓名：陈大文", 250, 95, {4: [("太", 0.3)], 3: [("阵", 0.05)]}), latin="CHAN,TAIMAN")
    before = extract(list(lines))[0]["nameCn"]
    fields = fields_of(lines)
    assert fields["nameCn"].value == "陈大文" and fields["nameCn"].score == before.score
    assert not fields["nameCn"].doubted and fields["nameEn"].value == "CHAN,TAIMAN"


def test_agreement_picks_the_name_among_chinese_words_position_got_wrong() -> None:
    # the words nearest the Latin name's row are label debris; the name is on another row
    lines = card(read("将西南", 670, 95, {0: [("蒋", 0.22)], 1: [("霞", 0.36)]}),
                 read("自立数", 580, 165, score=0.4), latin="JIANG,XIANAN")
    assert extract(list(lines))[0]["nameCn"].value == "自立数"
    fields = fields_of(lines)
    # 将 and 蒋 are both JIANG: the greedy 将 is kept (homophones are not told apart), 西 -> 霞
    assert fields["nameCn"].value == "将霞南" and fields["nameCn"].cue == "pinyin"


def test_one_misread_latin_letter_is_mended_beside_a_name_read_as_is() -> None:
    lines = card(read("姓名：林婷诗", 250, 95), latin="LIN,TINGSH")
    lines[2] = read("LIN,TINGSH", 250, 160, unsure=(9,))  # the recognizer doubted the H (an I was lost)
    fields = fields_of(lines)
    assert fields["nameEn"].value == "LIN,TINGSHI" and fields["nameEn"].doubted


def test_a_doubted_latin_letter_and_a_misread_character_are_put_right_together() -> None:
    lines = card(read("姓名：刘国慧", 250, 95, {4: [("强", 0.2)]}), latin="LU,QIANGHUI")
    lines[2] = read("LU,QIANGHUI", 250, 160, unsure=(1,))  # the I of LIU was lost, the U is doubted
    fields = fields_of(lines)
    assert (fields["nameCn"].value, fields["nameEn"].value) == ("刘强慧", "LIU,QIANGHUI")
    assert fields["nameCn"].doubted and fields["nameEn"].doubted


@pytest.mark.parametrize(("chinese", "latin"), [("王美", "WONG,MEI"), ("陈美", "CHAN,MEI"), ("郭美", "KUO,MEI")])
def test_a_surely_read_spelling_one_letter_off_pinyin_is_cantonese_or_wade_giles_and_stays(
        chinese: str, latin: str) -> None:
    fields = fields_of(card(read(f"姓名：{chinese}", 250, 95), latin=latin))
    assert fields["nameEn"].value == latin and fields["nameEn"].cue != "pinyin"


def test_a_surely_read_latin_name_is_never_mended_to_fit_a_replaced_character() -> None:
    # 孙尉 could become 孙城 (SUN CHENG) to mend SUN,CHEN: two guesses at once make another name
    fields = fields_of(card(read("姓名：孙尉", 250, 95, {4: [("城", 0.12)]}), latin="SUN,CHEN"))
    assert fields["nameEn"].value == "SUN,CHEN"
    assert fields["nameCn"].value == "孙尉"


def test_a_latin_name_without_its_comma_and_with_one_wrong_letter_is_found_from_the_chinese() -> None:
    lines = [read("台湾居民来往大陆通行证", 200, 10), read("OUEANGWEN", 170, 80, unsure=(2,)), read("欧阳文", 165, 135),
             read("2003.12.29", 400, 233), read("26310493", 155, 265), read("公安部出入境管理局", 140, 390)]
    fields = fields_of(lines)
    assert fields["nameEn"].value == "OUYANG,WEN" and fields["nameEn"].doubted  # 欧阳: a two-character surname


def test_sex_read_as_another_character_is_taken_from_its_guesses() -> None:
    fields = fields_of(card(read("姓名：赵磊思", 250, 95), read("作别：文", 578, 103, {3: [("女", 0.13)]})))
    assert fields["sex"].value == "女" and fields["sex"].doubted


def test_a_name_character_that_looks_like_a_sex_character_is_not_taken_for_sex() -> None:
    fields = fields_of(card(read("姓名：赵磊如", 250, 95, {5: [("女", 0.4)]})))
    assert "sex" not in fields


@pytest.mark.parametrize(("ch", "want"), [("吕", "LV"), ("单", "SHAN"), ("曾", "ZENG")])
def test_every_reading_of_a_character_counts(ch: str, want: str) -> None:
    assert want in spellings(ch)
    assert "LYU" in spellings("吕")  # ü as written on passports since 2012


def test_fit_requires_the_surname_to_end_at_a_character() -> None:
    assert fit([[("司", 1.0)], [("马", 1.0)], [("文", 1.0)]], "SIMA,WEN") is not None
    assert fit([[("司", 1.0)], [("马", 1.0)], [("文", 1.0)]], "SIMAW,EN") is None


def test_greedy_ctc_decoding_collapses_repeats_and_blanks_and_keeps_the_guesses() -> None:
    charset = ["blank", "a", "b", "c"]
    preds = np.array([[0.1, 0.7, 0.2, 0.0],   # a
                      [0.1, 0.8, 0.1, 0.0],   # a again: the same character
                      [0.9, 0.05, 0.05, 0.0],  # blank
                      [0.2, 0.6, 0.0, 0.2],   # a after a blank: a second one
                      [0.0, 0.1, 0.3, 0.6]])  # c, b the next guess
    text, score, alts = _alternatives(preds, charset, 2)
    assert text == "aac" == "".join(a[0][0] for a in alts)
    assert score == pytest.approx((0.7 + 0.6 + 0.6) / 3)  # the mean of the characters read, as RapidOCR's
    assert alts[2] == [("c", pytest.approx(0.6)), ("b", pytest.approx(0.3))] == alts[-1]
    assert all(ch != "blank" for a in alts for ch, _ in a) and len(alts[0:2]) == 2
    with pytest.raises(IndexError):
        alts[3]


def test_our_decoding_reads_what_rapidocrs_own_decoder_reads(engine: Engine) -> None:
    image, _ = generate(4242, "taiwan", ("phone",), "merged")
    img = geometry.decode(image)
    ocr = engine._models()
    crops = [crop_quad(img, b, pad=0.08) for b in ocr.detect(img)][:8]
    ours = ocr.recognize(crops)
    theirs = ocr._rec(TextRecInput(img=crops))
    assert [t for t, _, _ in ours] == list(theirs.txts)
    assert [round(s, 3) for _, s, _ in ours] == [round(float(s), 3) for s in theirs.scores]


@pytest.mark.parametrize(("text", "at", "guesses", "want"), [
    ("出生日期：199%.05.22", 8, [("6", 0.001), ("0", 0.0005)], "出生日期：1996.05.22"),  # a symbol between digits
    ("1966,07.2k03", 9, [("1", 0.2), ("4", 0.1)], "1966,07.2103"),  # a letter; the comma stays a separator
])
def test_a_character_read_between_digits_becomes_its_likeliest_digit_guess(
        text: str, at: int, guesses: list[tuple[str, float]], want: str) -> None:
    fixed = second_guess.digits_in_numbers(read(text, 60, 160, {at: guesses}))
    assert fixed.text == want
    assert fixed.alts is not None and fixed.alts[at][0][0] == want[at]  # alternatives follow the text


@pytest.mark.parametrize("text", ["H05145200", "姓名：赵磊思", "LIN,TINGSHI", "2023.01.08-2028.01.07",
                                  "出生日 Date 19"])
def test_letters_and_labels_beside_digits_are_left_alone(text: str) -> None:
    line = read(text, 60, 160, {i: [("7", 0.3)] for i in range(len(text))})
    assert second_guess.digits_in_numbers(line).text == text


def test_the_weakest_character_not_the_lines_mean_decides_a_values_trust() -> None:
    lines = card(read("姓名：赵磊思", 250, 95))
    assert lines[-1].text == "M26446378" and lines[-1].alts is not None
    lines[-1].alts[3] = [("4", 0.4), ("1", 0.35)]  # one doubtful digit in a line of sure ones
    fields, _ = extract(list(lines))
    before = fields["permitNumber"].score
    second_guess.weakest_character(lines, fields)
    assert fields["permitNumber"].score == pytest.approx((before * 0.4) ** 0.5)
    assert fields["birthDate"].score == pytest.approx(0.9)  # its own characters, every one at 0.9


def test_the_letter_of_a_hong_kong_number_read_as_another_capital_takes_its_h_or_m_guess() -> None:
    fixed = second_guess.number_letter(read("K30991642", 30, 430, {0: [("H", 0.04), ("R", 0.03)]}))
    assert fixed.text == "H30991642"


@pytest.mark.parametrize("text", ["No.07455973", "K3099164", "K309916421234", "AK30991642"])
def test_a_taiwan_number_or_a_short_one_keeps_what_was_read(text: str) -> None:
    line = read(text, 30, 430, {i: [("M", 0.3)] for i in range(len(text))})
    assert second_guess.number_letter(line).text == text


@pytest.mark.parametrize(("chinese", "latin", "setting"), [
    ("陈大文", "CHAN,TAIMAN", ()), ("王美", "WONG,MEI", ()), ("王美", "WONG,MEI", ("phone",))])
def test_a_hong_kong_residents_cantonese_name_reads_as_printed(
        engine: Engine, chinese: str, latin: str, setting: tuple[str, ...]) -> None:
    """The generator spells every name in pinyin; real Hong Kong permits carry Cantonese spellings, which the
    pinyin check must leave alone end to end (a card rendered with one, clean and photographed)."""
    rng = random.Random(5)
    fields = {**random_fields(rng, "hk"), "nameCn": chinese, "nameEn": latin}
    card = render_card(rng, "hk", fields, "classic")
    if setting:
        canvas, _, _ = degrade.phone_photo(rng, np.asarray(card.image), np.zeros((8, 2)))
    else:
        canvas, _ = compose(rng, card)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    data = engine.recognize(jpeg.tobytes())["data"]
    assert (data["nameCn"], data["nameEn"]) == (chinese, latin)


def test_a_lone_sex_character_misread_as_a_digit_takes_its_guess() -> None:
    fields = fields_of(card(read("姓名：赵磊思", 250, 95), read("4", 337, 101, {0: [("女", 0.08)]})))
    assert fields["sex"].value == "女" and fields["sex"].doubted


def test_sex_after_a_misread_label_that_the_name_did_not_keep() -> None:
    # 性别 女 read as 姓奶女: the pattern rules took it for the name, the pinyin moved the name elsewhere
    lines = card(read("姓奶女", 375, 106), read("对8 刘永志", 30, 114), latin="LIU,YONGZHI")
    fields = fields_of(lines)
    assert fields["nameCn"].value == "刘永志" and fields["sex"].value == "女"


def test_a_value_is_as_sure_as_its_own_characters_not_the_misread_label_beside_it() -> None:
    # "Hs女" of "Sex 女" on a phone photo: the label's letters read at 0.5, the value's character at 0.9; the
    # line's mean (0.63) made a sure 女 a value to review (phone photos of seeds 7 and 11)
    with_sex = card(read("姓名：赵磊思", 250, 95), read("Hs女", 578, 103, unsure=(0, 1)))
    sex = fields_of(with_sex)["sex"]
    assert sex.value == "女" and sex.score == pytest.approx(0.9)
    # a date whose count was read into its box after a misread label: each value its own characters
    lines = card(read("姓名：赵磊思", 250, 95))
    lines[3] = read("1985.09.11 hsue 02", 250, 230, unsure=(11, 12, 13, 14))
    fields = fields_of(lines)
    assert fields["birthDate"].score == pytest.approx(0.9) and fields["issueCount"].score == pytest.approx(0.9)
    # without the recognizer's characters (a hand-made line), the line's own score, as before
    plain = extract([Line(ln.quad, ln.text, 0.63) for ln in with_sex])[0]["sex"]
    assert plain.score == pytest.approx(0.63)
