"""The generator's truth obeys the permit rules and is deterministic for a seed."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from permit_ocr_local.synth import DEGRADATIONS, FIELDS, generate
from permit_ocr_local.synth.fields import add_years
from permit_ocr_local.synth.fonts import font_exists

pytestmark = pytest.mark.skipif(not font_exists(), reason="no Noto CJK font: run `make fonts`")


def _date(s: str) -> dt.date:
    return dt.datetime.strptime(s, "%Y.%m.%d").date()


@pytest.mark.parametrize("seed", range(12))
def test_truth_formats(seed: int) -> None:
    _, truth = generate(seed)
    d, kind = truth["data"], truth["kind"]
    assert set(d) == set(FIELDS) and all(isinstance(v, str) for v in d.values())
    assert kind in ("hk", "macao", "taiwan")
    if kind == "taiwan":
        assert d["permitType"] == "台湾居民来往大陆通行证"
        assert re.fullmatch(r"\d{8}", d["permitNumber"]) and d["issuePlace"]
    else:
        assert d["permitType"] == "港澳居民来往内地通行证"
        assert re.fullmatch(r"[HM]\d{8}", d["permitNumber"]) and d["issuePlace"] == ""
        assert d["permitNumber"][0] == ("H" if kind == "hk" else "M")
    assert re.fullmatch(r"\d{2}", d["issueCount"])
    assert re.fullmatch(r"[A-Z]+,[A-Z]+", d["nameEn"]) and 2 <= len(d["nameCn"]) <= 4
    assert d["sex"] in ("男", "女") and d["issueAuthority"] == "公安部出入境管理局"

    birth = _date(d["birthDate"])
    start, end = (_date(x) for x in d["validPeriod"].split("-"))
    assert birth < start < end
    adult = add_years(birth, 18) <= start
    years = 10 if kind != "taiwan" and adult else 5
    assert end == add_years(start, years) - dt.timedelta(days=1)


def test_deterministic() -> None:
    a = generate(42, "macao", ("perspective", "noise"))
    b = generate(42, "macao", ("perspective", "noise"))
    assert a == b
    assert generate(43, "macao")[1]["data"] != a[1]["data"]


def test_quarter_turn_swaps_size_and_tracks_card() -> None:
    image, truth = generate(5, "hk", ("rot90",))
    assert image[:2] == b"\xff\xd8"
    assert (truth["width"], truth["height"]) == (626, 928)
    tl = truth["card"][0]
    assert tl["y"] > truth["height"] / 2  # counter-clockwise turn: the card's top-left is now bottom-left


def test_unknown_degradation() -> None:
    assert "photocopy" in DEGRADATIONS
    with pytest.raises(ValueError, match="unknown degradation"):
        generate(1, "hk", ("smudge",))
