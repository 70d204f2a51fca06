"""Which read of a frame is taken and when the engine stops looking (engine/ranking.py)."""

from __future__ import annotations

import numpy as np
import pytest

from permit_ocr_local.engine import Engine
from permit_ocr_local.engine.layout import Field
from permit_ocr_local.engine.ranking import GOOD, complete, good_enough, rank
from permit_ocr_local.synth import generate

_NAMES = ["permitType", "nameCn", "nameEn", "birthDate", "issueAuthority", "permitNumber", "validPeriod",
          "issuePlace", "sex", "issueCount"]


def _fields(seen: int, doubted: tuple[str, ...] = (), titled: bool = True) -> dict[str, Field]:
    """The first ``seen`` fields of a card, each with a box (seen on the card); the title without one (a type
    told by the number) unless ``titled``."""
    out = {}
    for i, n in enumerate(_NAMES[:seen]):
        box = np.array([[0, 40 * i], [200, 40 * i], [200, 40 * i + 30], [0, 40 * i + 30]], np.float32)
        out[n] = Field("x", 0.9, box if titled or n != "permitType" else None, doubted=n in doubted)
    return out


def test_a_field_in_doubt_does_not_make_a_read_good_enough_to_stop_looking() -> None:
    """A read of the wrong part of a duplex page (blind seed 79) had six fields seen, then eight with a period
    mended by the span rule and a value picked among rivals: good enough to stop, and the card itself (ten
    fields, read next) was never read."""
    fields = _fields(8, doubted=("validPeriod", "issuePlace"))
    assert rank(fields, True) == (1, 6) < GOOD
    fields["validPeriod"].doubted = fields["issuePlace"].doubted = False
    assert rank(fields, True) == (1, 8) >= GOOD


def test_a_read_without_its_title_needs_most_of_a_permits_fields_to_be_complete() -> None:
    assert complete(_fields(3))
    assert not complete(_fields(4, titled=False))  # the type told by the number is not a field seen
    assert complete(_fields(6, titled=False))



def test_a_card_read_with_every_field_but_its_title_is_good_enough_to_stop_looking() -> None:
    """A card that prints no title can never have a good titled read: it was read four times over."""
    assert good_enough(rank(_fields(9, titled=False), True), 1)  # eight fields seen and sure
    assert not good_enough(rank(_fields(8, titled=False), True), 1)  # seven: another candidate may read more
    assert not good_enough(rank(_fields(9, doubted=("validPeriod",), titled=False), True), 1)
    assert good_enough(rank(_fields(8), True), 1) and not good_enough(rank(_fields(6), True), 1)
    assert good_enough(rank(_fields(6), True), 3)  # fair, after three candidates


def test_a_clean_card_without_a_title_is_read_once(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Studied seed 59's clean untitled card (the `bare` family prints neither title nor labels): read four
    times over (3.4 CPU s) before, as no untitled read was ever good enough."""
    reads: list[object] = []
    read_card = Engine._read_card

    def counted(self: Engine, *args: object) -> object:
        reads.append(args)
        return read_card(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Engine, "_read_card", counted)
    image, truth = generate(5903000, "hk", (), "bare")
    assert engine.recognize(image)["data"] == truth["data"]
    assert len(reads) == 1
