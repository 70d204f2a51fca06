"""valueProb's one fitted parameter set: the per-cue trust, fitted so that few right values fall under the
review line, and the cap that keeps a suspect value under it whatever its score."""

from __future__ import annotations

from permit_ocr_local.engine.confidence import REVIEW_MIN_PROB, fit_trust, value_prob


def _right(cue: str, raws: list[float]) -> list[tuple[str, float, bool]]:
    return [(cue, r, True) for r in raws]


def test_the_fit_picks_the_smallest_scale_that_keeps_the_right_values_over_the_line() -> None:
    trust = fit_trust(_right("pattern", [0.95] * 50), right_below=0.0)
    # 0.95 x s >= 0.895 (rounds to 90) from s = 0.95 on; a smaller scale would put every value under
    assert trust["pattern"] == 0.95
    assert value_prob(0.95, "pattern", trust) >= REVIEW_MIN_PROB


def test_the_fit_leaves_under_the_line_no_more_than_the_share_it_is_given() -> None:
    raws = [0.99] * 95 + [0.80] * 5  # 5 % read low
    lenient = fit_trust(_right("pattern", raws), right_below=0.05)
    strict = fit_trust(_right("pattern", raws), right_below=0.02)
    assert lenient["pattern"] == 0.91  # the low five may stay under: only the sure ones need lifting
    assert strict["pattern"] == 1.12  # 2 % may not: the low ones are lifted to 90 (0.80 x 1.12 = 89.6)
    assert sum(value_prob(r, "pattern", strict) < REVIEW_MIN_PROB for r in raws) <= 2


def test_where_no_scale_meets_the_share_the_fit_comes_as_close_as_it_can() -> None:
    # a quarter of the right values read at 0.2: no scale up to 1.30 lifts them, so the target cannot be met.
    # The fit used to fall back to 1.0 then, leaving the 0.8s under the line as well
    raws = [0.8] * 30 + [0.2] * 10
    trust = fit_trust(_right("pattern", raws), right_below=0.02)
    assert trust["pattern"] == 1.12  # the smallest scale that lifts every value that can be lifted
    assert sum(value_prob(r, "pattern", trust) < REVIEW_MIN_PROB for r in raws) == 10


def test_wrong_values_do_not_move_the_fit_and_a_cue_with_no_right_values_keeps_its_read_score() -> None:
    samples = _right("label+pattern", [0.97] * 20) + [("label+pattern", 0.99, False)] * 20
    trust = fit_trust(samples)
    assert trust["label+pattern"] == fit_trust(_right("label+pattern", [0.97] * 20))["label+pattern"]
    assert trust["position"] == 1.0


def test_a_suspect_value_stays_under_the_review_line_whatever_its_score() -> None:
    assert value_prob(1.0, "label+pattern", suspect=True) == REVIEW_MIN_PROB - 1
    assert value_prob(0.5, "pattern", suspect=True) < REVIEW_MIN_PROB
