"""The engine reads the committed synthetic samples field by field, in the API's Data shape."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
from PIL import Image

from permit_ocr_local.engine import Engine, EngineError

from .conftest import SAMPLES, sample

FIELDS = ("permitType", "nameCn", "nameEn", "birthDate", "sex", "validPeriod", "issueAuthority", "issuePlace",
          "permitNumber", "issueCount")
NAMES = ("hk-clean", "taiwan-clean", "hk-rot90", "taiwan-rot180", "macao-perspective", "hk-photocopy")
FAMILY_SAMPLES = sorted(p.name[: -len(".jpg")] for p in (SAMPLES / "families").glob("*.jpg"))


def _corners(d: dict[str, Any]) -> list[tuple[float, float]]:
    r = d["sliceRect"]
    return [(r[f"x{i}"], r[f"y{i}"]) for i in range(4)]


@pytest.mark.parametrize("name", NAMES)
def test_reads_sample(engine: Engine, name: str) -> None:
    image, truth = sample(name)
    out = engine.recognize(image, output_figure=True)

    for field in FIELDS:
        assert out["data"][field] == truth["data"][field], field
    assert [kv["key"] for kv in out["prism_keyValueInfo"]] == list(FIELDS)
    for kv in out["prism_keyValueInfo"]:
        assert kv["value"] == out["data"][kv["key"]]
        assert isinstance(kv["keyProb"], int) and 0 <= kv["valueProb"] <= 100
        assert ("valuePos" in kv) == bool(kv["value"])
        for p in kv.get("valuePos", []):
            assert -5 <= p["x"] <= truth["width"] + 5 and -5 <= p["y"] <= truth["height"] + 5

    # the card corners come back in reading order (TL, TR, BR, BL of the card) in original pixels
    diag = math.hypot(truth["width"], truth["height"])
    for (x, y), want in zip(_corners(out), truth["card"], strict=True):
        assert math.hypot(x - want["x"], y - want["y"]) < 0.03 * diag
    assert out["ftype"] == truth["ftype"]
    assert (out["orgWidth"], out["orgHeight"]) == (truth["width"], truth["height"])

    (fig,) = out["figure"]
    face = truth["face"]
    ix = max(0, min(fig["x"] + fig["w"], face["x"] + face["w"]) - max(fig["x"], face["x"]))
    iy = max(0, min(fig["y"] + fig["h"], face["y"] + face["h"]) - max(fig["y"], face["y"]))
    inter = ix * iy
    assert inter / (fig["w"] * fig["h"] + face["w"] * face["h"] - inter) > 0.7
    assert len(fig["points"]) == 4 and set(fig["box"]) == {"x", "y", "w", "h", "angle"}


def test_family_samples_are_committed_for_every_family() -> None:
    from permit_ocr_local.synth import FAMILIES

    assert {name.split("-")[0] for name in FAMILY_SAMPLES} == set(FAMILIES)


def test_reads_family_samples(engine: Engine) -> None:
    """The committed layout-family samples (a clean card and a phone photo per family): at least 90 % of
    all fields right, and at least 80 % of the wrong ones flagged by a valueProb under the default review
    threshold (90), issue 13's bar. (merged-taiwan-photo, glare over half the card, loses 5 fields.)"""
    right, wrong = 0, []
    for name in FAMILY_SAMPLES:
        image, truth = sample(f"families/{name}")
        for kv in engine.recognize(image)["prism_keyValueInfo"]:
            if kv["value"] == truth["data"][kv["key"]]:
                right += 1
            else:
                wrong.append((name, kv["key"], kv["value"], kv["valueProb"]))
    assert right / (right + len(wrong)) >= 0.9, wrong
    assert sum(prob < 90 for *_, prob in wrong) >= 0.8 * len(wrong), wrong


def test_figure_only_on_request(engine: Engine) -> None:
    image, _ = sample("macao-clean")
    out = engine.recognize(image)
    assert "figure" not in out
    assert (out["width"], out["height"]) == (out["orgWidth"], out["orgHeight"])


def test_undecodable_bytes(engine: Engine) -> None:
    with pytest.raises(EngineError) as err:
        engine.recognize(b"definitely not an image")
    assert err.value.code == "unsupportedImageFormat"


def test_no_permit(engine: Engine) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (640, 420), (128, 140, 150)).save(buf, "PNG")
    with pytest.raises(EngineError) as err:
        engine.recognize(buf.getvalue())
    assert err.value.code == "unmatchedImageType"
    assert err.value.message


def test_the_models_work_per_call_is_counted_and_repeats_exactly(engine: Engine) -> None:
    # what the benchmark compares versions on when a shared machine's timings are noise: the same image costs
    # the same pixels and columns every time, a refusal's search is counted too
    image, _ = sample("hk-clean")
    engine.recognize(image)
    first = dict(engine.work)
    engine.recognize(image)
    assert engine.work == first and first["det_pixels"] > 0 and first["rec_columns"] > 0
    buf = io.BytesIO()
    Image.new("RGB", (640, 420), (128, 140, 150)).save(buf, "PNG")
    with pytest.raises(EngineError):
        engine.recognize(buf.getvalue())
    assert engine.work["det_pixels"] > 0 and engine.work["rec_columns"] == 0


@pytest.mark.parametrize(("h", "w"), [(404, 640), (1754, 1240), (215, 320), (171, 1000), (2339, 1654), (17, 17)])
def test_the_counted_detector_pixels_are_what_rapidocr_feeds_its_detector(h: int, w: int) -> None:
    import numpy as np
    from rapidocr.ch_ppocr_det.utils import DetPreProcess

    from permit_ocr_local.engine.ocr import _DET_LIMIT, det_input_pixels

    fed = DetPreProcess(_DET_LIMIT, "max").resize(np.zeros((h, w, 3), np.uint8))
    assert fed is not None and det_input_pixels(h, w) == fed.shape[0] * fed.shape[1]
