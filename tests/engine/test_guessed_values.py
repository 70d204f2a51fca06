"""A value put right from the recognizer's guesses, or by the two names' agreement, goes to review whatever
its characters' confidence and whatever the per-cue trust (docs/engine.md: every value that comes from a
guess or a rule is flagged under 90). A factor or a guess's own probability does not keep it there: a Latin
letter mended from the pinyin, the rest of the name read at 0.99, was 97; a replaced Chinese character was 91
at the trust fit's ceiling; a period whose digit came from a guess was confirmed by the span rule it then kept.

Lines are built by hand, each character read at 0.99 unless given, and go through the steps
``Engine._fields`` runs after recognition."""

from __future__ import annotations

import numpy as np

from permit_ocr_local.engine import Engine, rules, second_guess
from permit_ocr_local.engine.confidence import CUES, REVIEW_MIN_PROB, TRUST, value_prob
from permit_ocr_local.engine.layout import Field, extract
from permit_ocr_local.engine.second_guess import ReadLine

CEILING = dict.fromkeys(CUES, 1.30)  # the largest scale fit_trust gives a cue


def line(text: str, x: float, y: float, probs: dict[int, float] | None = None,
         guesses: dict[int, list[tuple[str, float]]] | None = None) -> ReadLine:
    alts = [[(ch, (probs or {}).get(i, 0.99)), *(guesses or {}).get(i, [])] for i, ch in enumerate(text)]
    w = len(text) * 24.0
    return ReadLine(np.array([[x, y], [x + w, y], [x + w, y + 30], [x, y + 30]], np.float32), text, 0.97, alts)


def card(name: ReadLine | None = None, latin: ReadLine | None = None, period: ReadLine | None = None,
         extra: tuple[ReadLine, ...] = ()) -> list[ReadLine]:
    return [line("港澳居民来往内地通行证", 200, 10), name or line("姓名：赵磊思", 250, 95),
            latin or line("ZHAO,LEISI", 250, 160), line("1985.09.11", 250, 230),
            period or line("2017.11.09-2027.11.08", 250, 300), line("公安部出入境管理局", 250, 370),
            line("M26446378", 250, 440), *extra]


def read(lines: list[ReadLine]) -> dict[str, Field]:
    """What the engine makes of a card's recognized lines (Engine._read and Engine._fields, no image)."""
    lines = [second_guess.number_letter(second_guess.digits_in_numbers(ln)) for ln in lines]
    fields, family = extract(list(lines))
    Engine()._second_guesses(lines, fields)  # the engine's own steps, in its order (no model is loaded)
    rules.self_checked(fields, family)
    return fields


def prob(f: Field, trust: dict[str, float] = CEILING) -> int:
    return value_prob(f.score, f.cue, trust, f.suspect)


def test_a_latin_letter_mended_from_the_pinyin_goes_to_review_while_the_name_read_as_is_does_not() -> None:
    fields = read(card(name=line("姓名：林婷诗", 250, 95), latin=line("LIN,TINGSH", 250, 160, {9: 0.75})))
    assert fields["nameEn"].value == "LIN,TINGSHI"
    assert prob(fields["nameEn"], TRUST) < REVIEW_MIN_PROB and prob(fields["nameEn"]) < REVIEW_MIN_PROB
    assert prob(fields["nameCn"]) >= REVIEW_MIN_PROB


def test_a_chinese_character_replaced_by_the_guess_the_latin_name_spells_goes_to_review() -> None:
    fields = read(card(name=line("姓名：赵温思", 250, 95, {4: 0.6}, {4: [("磊", 0.35)]})))
    assert fields["nameCn"].value == "赵磊思"
    assert prob(fields["nameCn"]) < REVIEW_MIN_PROB
    assert prob(fields["nameEn"]) >= REVIEW_MIN_PROB  # read as is and spelled by the name: confirmed


def test_a_latin_name_found_from_the_chinese_one_without_its_comma_and_a_letter_off_goes_to_review() -> None:
    lines = card(name=line("欧阳文", 250, 95), latin=line("OUEANGWEN", 250, 160, {2: 0.5}))
    fields = read(lines)
    assert fields["nameEn"].value == "OUYANG,WEN"
    assert prob(fields["nameEn"]) < REVIEW_MIN_PROB


def test_a_period_whose_digit_came_from_a_guess_is_not_confirmed_by_the_span_rule_it_then_keeps() -> None:
    period = line("2017.11.09-2O27.11.08", 250, 300, {12: 0.5}, {12: [("0", 0.45)]})
    fields = read(card(period=period))
    assert fields["validPeriod"].value == "2017.11.09-2027.11.08"
    assert prob(fields["validPeriod"], TRUST) < REVIEW_MIN_PROB and prob(fields["validPeriod"]) < REVIEW_MIN_PROB


def test_a_value_read_as_is_beside_a_guessed_one_keeps_its_trust() -> None:
    fields = read(card(period=line("2017.11.09-2O27.11.08", 250, 300, {12: 0.5}, {12: [("0", 0.45)]})))
    assert prob(fields["birthDate"]) >= REVIEW_MIN_PROB and not fields["birthDate"].suspect
    assert prob(fields["permitNumber"]) >= REVIEW_MIN_PROB


def test_sex_taken_from_a_guess_goes_to_review_and_sex_read_after_a_misread_label_does_not_have_to() -> None:
    guessed = read(card(extra=(line("文", 600, 230, {0: 0.5}, {0: [("女", 0.49)]}),)))["sex"]
    assert guessed.value == "女" and guessed.suspect
    as_read = read(card(extra=(line("姓奶女", 600, 230),)))["sex"]
    assert as_read.value == "女" and not as_read.suspect


def test_a_count_printed_after_the_number_has_its_own_box_and_is_not_held_to_the_numbers_guessed_digit() -> None:
    """The count took the whole box of ``M2644O378 03``: its valuePos was the number's, and the digit the
    number took from a guess made the count, read as is, suspect and doubtful too."""
    lines = card()
    lines[6] = line("M2644O378 03", 250, 440, {5: 0.5}, {5: [("0", 0.45)]})
    fields = read(lines)
    number, count = fields["permitNumber"], fields["issueCount"]
    assert (number.value, count.value) == ("M26440378", "03")
    assert number.suspect and prob(number) < REVIEW_MIN_PROB
    assert not count.suspect and prob(count, TRUST) >= REVIEW_MIN_PROB
    assert count.quad is not None and float(count.quad[:, 0].min()) > 250 + 0.75 * 12 * 24  # the last quarter
