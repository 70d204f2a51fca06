"""The field extractor, one cue at a time: labels wherever they are, content patterns, and position.

Lines are built by hand in card coordinates (848 x 536), so each test pins one rule with no OCR involved.
"""

from __future__ import annotations

import numpy as np
import pytest

from permit_ocr_local.engine import confidence, layout, value_prob
from permit_ocr_local.engine.confidence import REVIEW_MIN_PROB
from permit_ocr_local.engine.layout import Line, extract
from permit_ocr_local.engine.second_guess import ReadLine

TITLE = "港澳居民来往内地通行证"
TAIWAN = "台湾居民来往大陆通行证"  # the permit that prints its issue place


def line(text: str, x: float, y: float, h: float = 30, score: float = 0.99) -> Line:
    w = max(1, len(text)) * h * 0.8
    return Line(np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32), text, score)


def values(lines: list[Line]) -> dict[str, str]:
    fields, _ = extract(lines)
    return {k: f.value for k, f in fields.items()}


def cues(lines: list[Line]) -> dict[str, str]:
    fields, _ = extract(lines)
    return {k: f.cue for k, f in fields.items()}


def test_label_on_the_same_line_as_its_value() -> None:
    lines = [line(TITLE, 200, 10, 40), line("姓名 林嘉欣", 60, 100), line("性别 女", 500, 100),
             line("出生日期 1990.03.05", 60, 160), line("有效期限 2020.01.01-2029.12.31", 60, 220),
             line("证件号码 H12345678", 60, 280), line("换证次数 03", 500, 280)]
    got = values(lines)
    assert got["nameCn"] == "林嘉欣" and got["sex"] == "女" and got["birthDate"] == "1990.03.05"
    assert got["validPeriod"] == "2020.01.01-2029.12.31" and got["permitNumber"] == "H12345678"
    assert got["issueCount"] == "03"
    assert cues(lines)["nameCn"] == "label+pattern"


def test_label_above_its_value() -> None:
    lines = [line(TAIWAN, 200, 10, 40), line("签发地点 Place of issue", 500, 300, 13), line("福州", 500, 320),
             line("姓名 Name", 250, 80, 13), line("陈思", 250, 98), line("签发机关 Issuing authority", 250, 300, 13),
             line("公安部出入境管理局", 250, 320)]
    fields, _ = extract(lines)
    assert fields["nameCn"].value == "陈思" and fields["nameCn"].cue == "label+pattern"
    assert fields["issuePlace"].value == "福州" and fields["issuePlace"].cue == "label+pattern"


def test_no_labels_at_all_patterns_and_position_decide() -> None:
    lines = [line("台湾居民来往大陆通行证", 200, 10, 40), line("王美琪", 60, 90), line("WANG,MEIQI", 60, 140),
             line("1984.11.02", 60, 200), line("男", 500, 200), line("2019.06.01-2024.05.31", 60, 260),
             line("公安部出入境管理局", 60, 320), line("厦门", 500, 320), line("12345678", 60, 380),
             line("02", 500, 380)]
    got = values(lines)
    assert got == {"permitType": "台湾居民来往大陆通行证", "nameCn": "王美琪", "nameEn": "WANG,MEIQI",
                   "birthDate": "1984.11.02", "sex": "男", "validPeriod": "2019.06.01-2024.05.31",
                   "issueAuthority": "公安部出入境管理局", "issuePlace": "厦门", "permitNumber": "12345678",
                   "issueCount": "02"}
    assert cues(lines)["nameCn"] == "position"


def test_label_and_value_merged_into_one_box_with_a_colon() -> None:
    lines = [line(TAIWAN, 200, 10, 40), line("姓名：马兰英", 250, 100), line("性别：男", 550, 100),
             line("签发机关：公安部出入境管理局签发地点：江苏", 250, 300), line("证件号码：16792358", 250, 360)]
    got = values(lines)
    assert got["nameCn"] == "马兰英" and got["sex"] == "男" and got["permitNumber"] == "16792358"
    assert got["issueAuthority"] == "公安部出入境管理局" and got["issuePlace"] == "江苏"


def test_misread_label_before_a_colon_is_not_taken_for_a_value() -> None:
    lines = [line(TITLE, 200, 10, 40), line("姓书：孙群", 250, 100), line("性期：女", 550, 100)]
    got = values(lines)
    assert got["nameCn"] == "孙群" and got["sex"] == "女"


def test_swapped_columns_and_rows_do_not_matter() -> None:
    """Sex before the name, the Latin name above the Chinese one, the count left of the number."""
    lines = [line(TITLE, 200, 10, 40), line("女", 60, 90), line("欧阳晨平", 300, 90), line("OUYANG,CHENPING", 60, 150),
             line("01", 60, 380), line("M28536603", 300, 380), line("2023.03.11-2033.03.10", 60, 260),
             line("1963.04.25", 300, 200)]
    got = values(lines)
    assert got["sex"] == "女" and got["nameCn"] == "欧阳晨平" and got["nameEn"] == "OUYANG,CHENPING"
    assert got["issueCount"] == "01" and got["permitNumber"] == "M28536603" and got["birthDate"] == "1963.04.25"


@pytest.mark.parametrize("rotate", [False, True])
def test_reading_order_does_not_matter(rotate: bool) -> None:
    lines = [line(TITLE, 200, 10, 40), line("姓名 林嘉欣", 60, 100), line("LAM,KAYAN", 60, 150),
             line("1990.03.05", 60, 200), line("2020.01.01-2029.12.31", 60, 260), line("H12345678", 60, 320)]
    shuffled = list(reversed(lines)) if rotate else lines
    assert values(shuffled) == values(lines)


def test_two_dates_in_the_wrong_order_are_not_a_validity_span() -> None:
    assert layout.valid_period("2029.12.31-2020.01.01") is None
    assert layout.valid_period("2020.01.01 2029.12.31") == "2020.01.01-2029.12.31"


@pytest.mark.parametrize(("text", "want"), [
    ("H1234567802", ("H12345678", "02")), ("M12345678", ("M12345678", "")), ("12345678", ("12345678", "")),
    ("1234567", None), ("X12345678", None),
])
def test_permit_number_formats(text: str, want: tuple[str, str] | None) -> None:
    assert layout.permit_number(text) == want


@pytest.mark.parametrize(("text", "want"), [
    ("LAM,KAYAN", "LAM,KAYAN"), ("LAM.KAYAN", "LAM,KAYAN"), ("inLatOUYANG,CHENPING", "OUYANG,CHENPING"),
    ("Lam,Kayan", None), ("LAMKAYAN", None),
])
def test_latin_name_pattern(text: str, want: str | None) -> None:
    assert layout.name_en(text) == want


def test_latin_name_without_its_comma_is_repaired_and_trusted_less() -> None:
    lines = [line(TITLE, 200, 10, 40), line("GUOWENYU", 60, 150, score=0.99), line("1990.03.05", 60, 200),
             line("H12345678", 60, 320)]
    fields, _ = extract(lines)
    assert fields["nameEn"].value == "GUO,WENYU" and fields["nameEn"].score < 0.9


def test_a_span_that_breaks_the_validity_rule_is_trusted_less() -> None:
    ok = [line(TITLE, 200, 10, 40), line("2020.01.01-2029.12.31", 60, 260), line("H12345678", 60, 320),
          line("1990.03.05", 60, 200)]
    odd = [line(TITLE, 200, 10, 40), line("2020.01.01-2027.12.31", 60, 260), line("H12345678", 60, 320),
           line("1990.03.05", 60, 200)]
    assert extract(odd)[0]["validPeriod"].score < extract(ok)[0]["validPeriod"].score


def test_sex_with_a_misread_label_clinging_to_it() -> None:
    assert layout.sex("性ses男") == "男" and layout.sex("男女") is None


TW_TITLE = "台湾居民来往大陆通行证"


def test_place_glued_to_a_misread_authority_is_split_off() -> None:
    lines = [line(TW_TITLE, 200, 10, 40), line("公安部出入境开理局上海", 250, 300), line("12345678", 250, 360)]
    got = values(lines)
    assert got["issueAuthority"] == "公安部出入境管理局" and got["issuePlace"] == "上海"


def test_place_after_a_misread_latin_label() -> None:
    assert layout.place("ofissue浙江") == "浙江" and layout.place("上海") == "上海"
    assert layout.place("林嘉欣") is None and layout.place("浙江省人") is None


def test_place_one_character_off_beside_the_authority_is_corrected_and_flagged() -> None:
    lines = [line(TW_TITLE, 200, 10, 40), line("公安部出入境管理局", 60, 320), line("浙汇", 500, 320, score=0.6),
             line("12345678", 60, 380)]
    fields, _ = extract(lines)
    assert fields["issuePlace"].value == "浙江" and fields["issuePlace"].doubted
    # a confident read is kept as read (a place outside the list is no misread)
    sure = [*lines[:2], line("金门", 500, 320, score=0.99), lines[3]]
    assert extract(sure)[0]["issuePlace"].value == "金门"


def test_sex_after_a_misread_label_in_the_same_box_is_taken_and_flagged() -> None:
    lines = [line(TITLE, 200, 10, 40), line("改洲男", 60, 90), line("张慧雨", 500, 100), line("ZHANG,HUIYU", 500, 150),
             line("H12345678", 60, 320)]
    fields, _ = extract(lines)
    assert fields["sex"].value == "男" and fields["sex"].doubted
    assert fields["nameCn"].value == "张慧雨"
    assert layout.sex_after_label("男女") is None and layout.sex_after_label("5日51女") == "女"


def test_settled_needs_every_printed_field_and_no_doubt() -> None:
    full = [line(TW_TITLE, 200, 10, 40), line("王美琪", 60, 90), line("WANG,MEIQI", 60, 140),
            line("1984.11.02", 60, 200), line("男", 500, 200), line("2019.06.01-2024.05.31", 60, 260),
            line("公安部出入境管理局", 60, 320), line("厦门", 500, 320), line("12345678", 60, 380),
            line("02", 500, 380)]
    assert layout.settled(*extract(full))
    assert not layout.settled(*extract(full[:-1]))  # the count is missing: the labels may name it
    rivals = [*full, line("陈思", 60, 450)]  # two Chinese names: a label must choose
    assert not layout.settled(*extract(rivals))


@pytest.mark.parametrize("text", ["9证式R 01", "出生日期 1968.07.03证e01", "1955.09.18发次 e01"])
def test_count_after_a_misread_label_in_the_same_box(text: str) -> None:
    lines = [line(TITLE, 200, 10, 40), line(text, 300, 240), line("H12345678", 60, 320)]
    assert values(lines)["issueCount"] == "01"


@pytest.mark.parametrize(("text", "spans", "want"), [
    ("有地：2016.06.662026.06.15", (5, 10), "2016.06.16-2026.06.15"),  # the start's day misread
    ("2021.12.10-2026.12.0B", (5,), "2021.12.10-2026.12.09"),  # B folds to 8: still a digit off
    ("2021.12.10-2931.12.69", (5, 10), "2021.12.10-2031.12.09"),  # the end two digits off, 10 years
    ("202112.10-293412.09", (5,), None),  # a Taiwan permit runs 5 years: three digits off is too many
    ("2024.05.22-2034.05.21", (5, 10), None),  # both read: nothing to mend
])
def test_a_validity_period_with_one_misread_date_is_mended_by_the_span_rule(
        text: str, spans: tuple[int, ...], want: str | None) -> None:
    assert layout.mended_period(text, spans) == want


def _sure(text: str, unsure_at: int) -> list[float]:
    """A recognizer's confidence in each character of ``text``: sure of all but the one at ``unsure_at``."""
    return [0.55 if i == unsure_at else 0.99 for i in range(len(text))]


@pytest.mark.parametrize(("text", "unsure", "want"), [
    # either date may be the misread one, one digit off each way: the digit read with less confidence is
    ("2023.03.06-2033.03.03", 20, "2023.03.06-2033.03.05"),  # the end's last 3 (seed 11's phone photo)
    ("2023.03.06-2033.03.03", 9, "2023.03.04-2033.03.03"),  # the start's 6
    ("2024.0101-2035 12.31", 13, "2024.01.01-2033.12.31"),  # the end's 5 (seed 7's copier page)
    ("2023.10.04-2029.10.03", 14, "2023.10.04-2028.10.03"),  # a 9 for an 8, five years (seed 11, dim)
])
def test_two_mends_that_fit_as_well_are_decided_by_the_digit_the_recognizer_doubted(
        text: str, unsure: int, want: str) -> None:
    assert layout.mended_period(text, (5, 10)) is None  # the text alone cannot tell
    assert layout.mended_period(text, (5, 10), _sure(text, unsure)) == want


def test_two_mends_whose_digits_read_as_surely_are_left_unmended() -> None:
    text = "2023.03.06-2033.03.03"
    assert layout.mended_period(text, (5, 10), [0.9] * len(text)) is None
    assert layout.mended_period(text, (5, 10), [0.9] * (len(text) - 1)) is None  # not the text's confidence


def test_a_mended_validity_period_is_taken_but_doubted() -> None:
    fields, _ = extract([line(TITLE, 200, 10, 40), line("有效期限：2016.06.662026.06.15", 60, 220)])
    assert fields["validPeriod"].value == "2016.06.16-2026.06.15" and fields["validPeriod"].doubted


def test_a_period_read_as_two_dates_that_break_the_span_rule_is_mended_and_doubted() -> None:
    # the end read as another valid date: the start and the 10-year span say which (one digit off; the end
    # kept and the start mended would be two off)
    fields, _ = extract([line(TITLE, 200, 10, 40), line("有效期限：2016.06.16-2026.06.19", 60, 220)])
    assert fields["validPeriod"].value == "2016.06.16-2026.06.15" and fields["validPeriod"].doubted


def test_a_period_two_mends_fit_is_mended_where_the_recognizer_doubted_a_digit() -> None:
    text = "2023.03.06-2033.03.03"  # 2033.03.05 or 2023.03.04: one digit off each way
    as_read = line(text, 60, 220)
    fields, _ = extract([line(TITLE, 200, 10, 40), as_read])
    assert fields["validPeriod"].value == text and fields["validPeriod"].doubted  # nothing decides: as read
    guesses = [[(ch, p), ("5", 0.3)] for ch, p in zip(text, _sure(text, 20), strict=True)]
    guessed = ReadLine(as_read.quad, text, 0.97, guesses)
    fields, _ = extract([line(TITLE, 200, 10, 40), guessed])
    assert fields["validPeriod"].value == "2023.03.06-2033.03.05" and fields["validPeriod"].doubted


@pytest.mark.parametrize(("text", "birth", "count"), [
    ("出日Da of bith 1954.07.17证次 sue 01", "1954.07.17", "01"),  # a long misread label between them
    ("1956.09151sste 02", "1956.09.15", "02"),  # the label's I read as 1
    ("1979.05.0604", "1979.05.06", "04"),  # no gap at all: the count is not cut out of the date
    ("1995.07.3数 lsso02", "", "02"),  # the date's last digit lost: the count still reads
])
def test_a_count_after_a_date_in_one_box_is_its_own_value(text: str, birth: str, count: str) -> None:
    fields, _ = extract([line(TITLE, 200, 10, 40), line(text, 60, 160), line("H12345678", 60, 280)])
    assert fields.get("birthDate", layout.Field("", 0, None)).value == birth
    assert fields["issueCount"].value == count


def test_a_validity_period_is_never_split_into_a_date_and_a_count() -> None:
    fields, _ = extract([line(TITLE, 200, 10, 40), line("2023.01.08-2028.01.07", 60, 220)])
    assert fields["validPeriod"].value == "2023.01.08-2028.01.07" and "issueCount" not in fields


def test_the_authority_is_found_inside_a_box_with_a_misread_label_in_front() -> None:
    fields, _ = extract([line(TITLE, 200, 10, 40), line("发析关lamgmthority公安部出入境管理局", 60, 400)])
    assert fields["issueAuthority"].value == "公安部出入境管理局"


def test_a_place_after_the_authority_and_a_half_read_label_is_the_issue_place() -> None:
    fields, _ = extract([line("台湾居民来往大陆通行证", 200, 10, 40), line("公安部出入境管理局地点厦门", 60, 400)])
    assert fields["issuePlace"].value == "厦门" and fields["issueAuthority"].value == "公安部出入境管理局"


def test_a_latin_name_ending_in_a_small_l_for_a_capital_i() -> None:
    assert layout.name_en("CHEN,MEl") == "CHEN,MEI"


@pytest.mark.parametrize("text", ["安疾部出入域管理用", "公安非出入建资理局"])
def test_an_authority_with_three_characters_misread_is_still_the_authority(text: str) -> None:
    assert layout.authority(text) == layout.AUTHORITY
    assert layout.authority("出生日期") is None and layout.authority("港澳居民来往内地通行证") is None


def test_a_title_cut_by_the_photos_edge_and_a_title_lost_altogether() -> None:
    fields, family = extract([line("地通行证", 600, 10, 40), line("H04920273", 60, 400)])
    assert fields["permitType"].value == TITLE and family == "hk_macao"
    fields, family = extract([line("12345678", 60, 400), line("2019.06.01-2024.05.31", 60, 300)])
    assert fields["permitType"].value == "台湾居民来往大陆通行证" and fields["permitType"].doubted  # from the number


def test_a_hong_kong_or_macao_permit_has_no_issue_place() -> None:
    fields, _ = extract([line(TITLE, 200, 10, 40), line("公安部出入境管理局", 60, 400), line("厦门", 500, 400),
                         line("H12345678", 60, 460)])
    assert "issuePlace" not in fields and fields["issueAuthority"].value == "公安部出入境管理局"


def test_the_count_is_the_two_digit_number_not_a_lone_digit_nearer_the_permit_number() -> None:
    fields, _ = extract([line(TITLE, 200, 10, 40), line("2", 553, 171), line("03", 689, 172),
                         line("M51391085", 417, 374)])
    assert fields["issueCount"].value == "03"


def test_a_labelled_count_with_its_latin_label_read_as_digits_in_front() -> None:
    fields, _ = extract([line(TITLE, 200, 10, 40), line("出生日期 1977.01.17次数 1509", 257, 163),
                         line("91605913", 439, 376)])
    assert fields["issueCount"].value == "09" and fields["issueCount"].doubted
    assert fields["birthDate"].value == "1977.01.17"


# --- values an independent check confirms (rules.self_checked) ------------------------------------------

def _checked(lines: list[Line], today: str = "2026.12.01") -> dict[str, layout.Field]:
    import datetime as dt

    from permit_ocr_local.engine import rules

    fields, family = extract(lines)
    rules.self_checked(fields, family, dt.datetime.strptime(today, "%Y.%m.%d").date())
    return fields


def test_a_title_the_numbers_form_agrees_with_is_trusted_even_on_a_sparse_read() -> None:
    # three fields seen: too few to vouch for any of them, but the H number names the same permit as the title
    fields = _checked([line(TITLE, 200, 40, score=0.6), line("H12345678", 300, 300, score=0.7),
                       line("2020.01.05-2030.01.04", 300, 400, score=0.6)])
    assert fields["permitType"].score >= 0.97 and not fields["permitType"].suspect
    assert fields["validPeriod"].score >= 0.97 and not fields["validPeriod"].suspect
    assert fields["permitNumber"].suspect  # nothing checks the number's digits


def test_a_title_the_numbers_form_contradicts_is_not_confirmed() -> None:
    fields = _checked([line(TAIWAN, 200, 40, score=0.6), line("H12345678", 300, 300, score=0.7)])
    assert fields["permitType"].score < 0.97


@pytest.mark.parametrize("period", ["2020.01.05-2028.01.04",  # 8 years: a misread digit broke the span rule
                                    "2027.01.05-2037.01.04"])  # keeps the rule but starts after today
def test_a_validity_period_that_fails_its_checks_is_not_confirmed(period: str) -> None:
    fields = _checked([line(TITLE, 200, 40), line(period, 300, 400, score=0.6)])
    assert fields["validPeriod"].score < 0.97


def test_a_doubtfully_read_authority_snapped_to_the_one_authority_is_trusted() -> None:
    fields = _checked([line(TITLE, 200, 40), line("公安部出入境管埋局", 300, 450, score=0.62)])
    assert fields["issueAuthority"].value == "公安部出入境管理局"
    assert fields["issueAuthority"].score >= 0.97


def test_a_reconstructed_validity_period_is_not_confirmed() -> None:
    # 2030.81.04 is no date: the period is mended from the start by the span rule, so it agrees with the rule
    # by construction and confirms nothing
    fields = _checked([line(TITLE, 200, 40), line("2020.01.05-2030.81.04", 300, 400, score=0.9)])
    assert fields["validPeriod"].value == "2020.01.05-2030.01.04"
    assert fields["validPeriod"].doubted and fields["validPeriod"].score < 0.97


def test_another_authority_is_kept_as_read_and_not_confirmed() -> None:
    # permits issued since the National Immigration Administration took over name it: not the authority the
    # confirmation knows, so it is neither snapped to that one nor trusted beyond its read
    fields = _checked([line(TITLE, 200, 40), line("签发机关：国家移民管理局", 300, 450, score=0.6)])
    assert fields["issueAuthority"].value == "国家移民管理局"
    assert fields["issueAuthority"].score < 0.97


def _card(period: str = "2016.06.16-2026.06.15", name_en: str = "ZHANG,SAN", title: bool = True) -> list[Line]:
    """A card's lines, no labels: every value decided by its pattern (or place), six or more of them."""
    return [*([line(TITLE, 200, 10, 40)] if title else []), line("张三", 60, 80), line(name_en, 60, 120),
            line("1990.01.02", 60, 160), line("男", 300, 160), line(period, 60, 220),
            line("公安部出入境管理局", 60, 260), line("H12345678", 60, 300), line("01", 400, 300)]


@pytest.mark.parametrize(("lines", "rebuilt"), [
    (_card(period="2016.06.16-2026.06.19"), "validPeriod"),  # a date read as another: the span rule's
    (_card(period="2016.06.662026.06.15"), "validPeriod"),  # a date unreadable
    (_card(name_en="ZHANGSAN"), "nameEn"),  # the comma put back
    (_card(title=False), "permitType"),  # the kind told by the number's form
])
def test_a_value_rebuilt_by_a_rule_stays_under_the_review_line_whatever_the_trust(
        lines: list[Line], rebuilt: str) -> None:
    """The per-cue trust is above 1 for values decided by pattern (1.24 shipped, up to 1.30 refitted): a factor
    alone let a period rebuilt by the span rule, read at 0.99, out at 98."""
    fields, family = extract(lines)
    f = fields[rebuilt]
    assert f.doubted
    assert value_prob(rebuilt, f, family or "") < REVIEW_MIN_PROB
    assert confidence.value_prob(f.score, f.cue, dict.fromkeys(confidence.CUES, 1.3), f.suspect) < REVIEW_MIN_PROB
    sure = [k for k in ("birthDate", "permitNumber", "issueAuthority") if k in fields]
    assert sure and all(value_prob(k, fields[k], family or "") >= REVIEW_MIN_PROB for k in sure)  # the card reads
