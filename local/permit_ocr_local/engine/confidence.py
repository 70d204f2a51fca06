"""valueProb: the recognizer's confidence in a value, scaled by how the field was decided.

A value read with a label that agrees with its pattern is trusted as read; one decided by pattern or
position alone is trusted less. The scale per cue (``TRUST``) is the engine's one fitted parameter set:
``fit_trust`` picks, per cue, the smallest scale that keeps at most ``right_below`` of the right values
under the review threshold, so wrong values fall under it as often as possible. The benchmark refits it
leaving each layout family out and scores that family with the refit (bench/bench_engine.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

REVIEW_MIN_PROB = 90  # function/permit_ocr/config.py's default
CUES = ("label+pattern", "pattern", "position", "pinyin")
# the share of right values the fit may leave under the line: the bar is 5 % on families the fit has not
# seen, and a held-out family runs 1.5-2.5 points above the share fitted on the others (unseen seeds 29 + 31
# and 37 + 43 at 3 %: 5.6 % and 5.2 % held out)
RIGHT_BELOW = 0.02
# fit_trust on the studied seeds 7 + 11 (`-n 4`, every layout and capture family: 240 images, 2026-12-08, seventh
# round); the benchmark itself scores each image with a refit that leaves its layout and capture family out.
# Every cue is fitted, "pinyin" too: a value put right from a guess is suspect (second_guess), so what the fit
# sees of that cue is a name picked among words, as read, by the two names' agreement
TRUST: dict[str, float] = {"label+pattern": 1.03, "pattern": 1.08, "position": 1.27, "pinyin": 0.9}


def value_prob(raw: float, cue: str, trust: dict[str, float] | None = None, suspect: bool = False) -> int:
    """``raw`` scaled by the cue's trust, 0..100; a suspect value (see ``rules.where_from``) stays under
    REVIEW_MIN_PROB whatever its score."""
    t = (trust or TRUST).get(cue, 1.0)
    prob = max(0, min(100, round(100 * raw * t)))
    return min(prob, REVIEW_MIN_PROB - 1) if suspect else prob


def fit_trust(samples: Iterable[tuple[str, float, bool]], threshold: int = REVIEW_MIN_PROB,
              right_below: float = RIGHT_BELOW) -> dict[str, float]:
    """``samples``: (cue, raw score, value was right). Returns a scale per cue (1.0 where no data)."""
    by_cue: dict[str, list[tuple[float, bool]]] = {c: [] for c in CUES}
    for cue, raw, ok in samples:
        by_cue.setdefault(cue, []).append((raw, ok))
    out: dict[str, float] = {}
    steps = np.arange(60, 131) / 100  # 0.60 .. 1.30
    for cue, rows in by_cue.items():
        right = np.array([r for r, ok in rows if ok], np.float64)
        if not right.size:
            out[cue] = 1.0
            continue
        # value_prob's rounding, for every scale at once: how many right values each scale puts under threshold
        probs = np.clip(np.round(100 * right[None, :] * steps[:, None]), 0, 100)
        below = (probs < threshold).sum(axis=1)
        # where no scale meets the target (right values read too low for any), the smallest scale that comes
        # closest: falling back to 1.0 there put more right values under the line than any scale tried
        fits = np.flatnonzero(below <= max(right_below * right.size, int(below.min())))
        out[cue] = float(steps[fits[0]])
    return out
