"""Decoding, card quad detection, perspective straightening and 0/180 orientation.

The straightened card lives in a fixed frame (CARD_W x CARD_H, ID-1 ratio); every later stage works in
that frame and ``to_original`` maps points back through the inverse homography.
"""

from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np

from permit_ocr.precheck import MAX_RATIO, MAX_SIDE, MIN_SIDE  # the API's size limits, one definition

from .errors import EngineError

Img = np.ndarray[Any, Any]
Quad = np.ndarray[Any, Any]

CARD_W, CARD_H = 848, 536
CARD_RATIO = CARD_W / CARD_H
_QUAD_SIDE = 640  # quad search resolution: the card outline needs no detail
_LINE_RATIO = 2.5  # a text box this much longer than high is a line, and shows the text's direction
_MAX_SKEW = np.deg2rad(12)  # text lines vs the outline's long side: keystone bends them a few degrees


def f32(rows: Any) -> np.ndarray[Any, Any]:
    """A float32 array (OpenCV's geometry functions want float32 points)."""
    return np.asarray(rows, dtype=np.float32)


def decode(image: bytes) -> Img:
    """BGR uint8; OpenCV first, Pillow for what it lacks (GIF, some TIFF/WebP)."""
    if not image:
        raise EngineError("unsupportedImageFormat", "empty image")
    img = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        try:
            from PIL import Image

            with Image.open(io.BytesIO(image)) as pil:
                img = cv2.cvtColor(np.asarray(pil.convert("RGB")), cv2.COLOR_RGB2BGR)
        except Exception as exc:  # Pillow raises several unrelated types for junk input
            raise EngineError("unsupportedImageFormat", "the bytes are not a decodable image") from exc
    check_size(*img.shape[1::-1])
    return img


def check_size(w: int, h: int) -> None:
    """The API's limits (function/permit_ocr/precheck.py is the reference): 15 < side < 8192, ratio < 50."""
    if min(w, h) <= MIN_SIDE or max(w, h) >= MAX_SIDE:
        raise EngineError("illegalImageSize", f"image is {w}x{h} px; each side must be over {MIN_SIDE} "
                          f"and under {MAX_SIDE} px")
    if max(w, h) / min(w, h) >= MAX_RATIO:
        raise EngineError("illegalImageSize", f"image is {w}x{h} px; the aspect ratio must be under {MAX_RATIO}")


def order_quad(pts: Quad) -> Quad:
    """Order 4 points TL, TR, BR, BL as seen in the image."""
    p = np.asarray(pts, np.float32).reshape(4, 2)
    c = p.mean(axis=0)
    ang = np.arctan2(p[:, 1] - c[1], p[:, 0] - c[0])
    p = p[np.argsort(ang)]  # clockwise in image coords starting near -180 deg (left)
    start = int(np.argmin(p.sum(axis=1)))
    return np.roll(p, -start, axis=0)


def _quad_score(q: Quad, area_img: float) -> float:
    """Plausibility of a card quad: large, convex, roughly ID-1 shaped."""
    if not cv2.isContourConvex(q.astype(np.float32).reshape(-1, 1, 2)):
        return 0.0
    area = cv2.contourArea(q.astype(np.float32))
    frac = area / area_img
    if not 0.15 <= frac <= 0.995:
        return 0.0
    w = (np.linalg.norm(q[0] - q[1]) + np.linalg.norm(q[3] - q[2])) / 2
    h = (np.linalg.norm(q[0] - q[3]) + np.linalg.norm(q[1] - q[2])) / 2
    ratio = max(w, h) / max(min(w, h), 1)
    if not 1.25 <= ratio <= 2.0:
        return 0.0
    return float(frac * (1.0 - abs(ratio - CARD_RATIO) / CARD_RATIO))


def _candidates(small: Img) -> list[Quad]:
    """Card-like outlines from several masks: brightness (both polarities), saturation, and edges."""
    gray = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    sat = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2HSV)[..., 1], (5, 5), 0)
    masks = []
    for channel in (gray, sat):
        _, otsu = cv2.threshold(channel, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        masks += [otsu, 255 - otsu]
    for lo, hi in ((30, 90), (15, 45)):
        masks.append(cv2.dilate(cv2.Canny(gray, lo, hi), np.ones((3, 3), np.uint8)))
    out: list[Quad] = []
    for i, mask in enumerate(masks):
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
        if i >= 4:  # edge masks: fill closed outlines so the card is one blob
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            mask = cv2.drawContours(np.zeros_like(mask), contours, -1, 255, cv2.FILLED)
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((9, 9), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for cnt in sorted(contours, key=cv2.contourArea, reverse=True)[:4]:
            hull = cv2.convexHull(cnt)
            peri = cv2.arcLength(hull, True)
            for eps in (0.02, 0.035, 0.05):
                approx = cv2.approxPolyDP(hull, eps * peri, True)
                if len(approx) == 4:
                    out.append(order_quad(approx.reshape(4, 2)))
                    break
            else:
                out.append(order_quad(cv2.boxPoints(cv2.minAreaRect(hull))))
    return out


def _inside(q: Quad, points: Img) -> float:
    """Share of ``points`` inside quad ``q``."""
    if len(points) == 0:
        return 0.0
    c = q.astype(np.float32).reshape(-1, 1, 2)
    return float(np.mean([cv2.pointPolygonTest(c, (float(x), float(y)), False) >= 0 for x, y in points]))


def line_direction(box: Quad) -> tuple[float, float] | None:
    """A text box's direction (radians, modulo pi) and length when it is a line (at least _LINE_RATIO of its
    heights long); None for a square box (one character says nothing of the direction)."""
    e1, e2 = box[1] - box[0], box[2] - box[1]
    l1, l2 = float(np.linalg.norm(e1)), float(np.linalg.norm(e2))
    if max(l1, l2) < _LINE_RATIO * max(min(l1, l2), 1e-6):
        return None
    e = e1 if l1 >= l2 else e2
    return float(np.arctan2(e[1], e[0])) % np.pi, max(l1, l2)


def text_direction(boxes: list[Quad]) -> float | None:
    """The text lines' direction (radians, modulo pi): the length-weighted mean direction of the boxes that
    are lines (``line_direction``); None without any."""
    c = s = 0.0
    for b in boxes:
        line = line_direction(b)
        if line is None:
            continue
        a, length = 2 * line[0], line[1]  # doubled: a line and its reverse are one direction
        c, s = c + length * float(np.cos(a)), s + length * float(np.sin(a))
    if c == 0 and s == 0:
        return None
    return float(np.arctan2(s, c) / 2) % np.pi


def long_side_direction(q: Quad) -> float:
    """Direction (radians, modulo pi) of a quad's long sides, averaged over the two."""
    if np.linalg.norm(q[1] - q[0]) >= np.linalg.norm(q[2] - q[1]):
        v = (q[1] - q[0]) + (q[2] - q[3])
    else:
        v = (q[2] - q[1]) + (q[3] - q[0])
    return float(np.arctan2(v[1], v[0])) % np.pi


def text_block(boxes: list[Quad]) -> list[Quad]:
    """The boxes of the largest block of text (``text_blocks``); fewer than three boxes are one block."""
    return boxes if len(boxes) < 3 else text_blocks(boxes)[0]


def text_blocks(boxes: list[Quad], own_heights: bool = False) -> list[list[Quad]]:
    """The boxes grouped into blocks of text, the most text area first: lines closer to each other than three
    line heights are one block (a card's title, labels and values); a phone's status bar, a viewer's buttons, a
    caption or the ruled lines of a sheet of paper further away are others. The line height is the boxes'
    median, or with ``own_heights`` the lower of the two lines' (a frame seen small mixes a card's lines with
    boxes as tall as a sheet of paper: their median would join everything)."""
    if not boxes:
        return []
    rects = [(float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 0].max()), float(b[:, 1].max())) for b in boxes]
    median = float(np.median([r[3] - r[1] for r in rects]))
    parent = list(range(len(rects)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(rects):
        for j in range(i + 1, len(rects)):
            b = rects[j]
            gap = 3.0 * (min(a[3] - a[1], b[3] - b[1]) if own_heights else median)
            if max(a[0] - b[2], b[0] - a[2]) < gap and max(a[1] - b[3], b[1] - a[3]) < gap:
                parent[root(i)] = root(j)
    area: dict[int, float] = {}
    blocks: dict[int, list[Quad]] = {}
    for i, r in enumerate(rects):
        area[root(i)] = area.get(root(i), 0.0) + (r[2] - r[0]) * (r[3] - r[1])
        blocks.setdefault(root(i), []).append(boxes[i])
    return [blocks[k] for k in sorted(blocks, key=lambda k: -area[k])]


def text_extent(boxes: list[Quad], angle: float | None, margin: float) -> Quad:
    """The card's stand-in when no outline was found: the extent of the text's main block (``text_block``)
    along the lines' direction, grown by ``margin`` and, when narrower than a card, widened to the card's
    proportions (the text beside a photo is a tall block; straightened as it is, its lines would come out
    stretched)."""
    block = text_block(boxes)
    own = text_direction(block)
    if own is not None:  # a line turned away from the block's (a viewer's level caption under a card
        # photographed askew, near enough to join the block) is not the card's print
        block = [b for b in block if (d := line_direction(b)) is None or _angle_between(d[0], own) <= _MAX_SKEW]
    pts = np.concatenate(block).astype(np.float32).reshape(-1, 2)
    if angle is None:
        (_cx, _cy), (_bw, _bh), deg = cv2.minAreaRect(pts)
        angle = float(np.deg2rad(deg)) if _bw >= _bh else float(np.deg2rad(deg + 90))
    u = np.array([np.cos(angle), np.sin(angle)], np.float32)
    v = np.array([-u[1], u[0]], np.float32)
    pu, pv = pts @ u, pts @ v
    width = float(pu.max() - pu.min()) * 1.1 + margin
    height = float(pv.max() - pv.min()) * 1.12 + margin
    width = max(width, height * CARD_RATIO)
    centre = u * float(pu.max() + pu.min()) / 2 + v * float(pv.max() + pv.min()) / 2
    corners = [centre + su * width / 2 * u + sv * height / 2 * v for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    return order_quad(np.array(corners, np.float32))


def _angle_between(a: float, b: float) -> float:
    d = abs(a - b) % np.pi
    return min(d, np.pi - d)


def find_card(img: Img, text_centres: Img | None = None, text_angle: float | None = None) -> Quad | None:
    """Card corners (TL, TR, BR, BL in the image) or None when no card-like outline stands out.

    ``text_centres`` (image pixels) are where text was detected: an outline that leaves text outside
    is another object on the desk (a sheet of paper, a shadow), not the card. ``text_angle`` is the text
    lines' direction: a permit's lines run along its long side, so an outline whose long side crosses
    them is a blob of card and desk, or a part of the card, not its outline.
    """
    h, w = img.shape[:2]
    scale = _QUAD_SIDE / max(h, w)
    small = cv2.resize(img, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    area = float(small.shape[0] * small.shape[1])
    centres = None if text_centres is None else np.asarray(text_centres, np.float32) * scale
    best, best_score = None, 0.0
    for q in _candidates(small):
        s = _quad_score(q, area)
        if s > 0 and text_angle is not None and _angle_between(long_side_direction(q), text_angle) > _MAX_SKEW:
            s = 0.0
        if s > 0 and centres is not None and len(centres) >= 3:
            # all the text, tightly: a larger outline around card and paper scores lower than the card's
            frac = _quad_frac(q, area)
            inside = _inside(q, centres)
            s = 0.0 if inside < 0.8 else (s / frac) * inside ** 4 / frac ** 0.5
        if s > best_score:
            best, best_score = q, s
    return None if best is None else (best / scale).astype(np.float32)


def _quad_frac(q: Quad, area_img: float) -> float:
    return float(cv2.contourArea(q.astype(np.float32))) / area_img


def long_edge_first(q: Quad) -> Quad:
    """Make the first edge a long edge: a card photographed at 90/270 has its top edge vertical."""
    if np.linalg.norm(q[0] - q[1]) < np.linalg.norm(q[0] - q[3]):
        q = np.roll(q, -1, axis=0)
    return q


def homography(quad: Quad) -> Img:
    dst = f32([[0, 0], [CARD_W, 0], [CARD_W, CARD_H], [0, CARD_H]])
    m: Img = cv2.getPerspectiveTransform(np.asarray(quad, np.float32), dst)
    return m


def warp(img: Img, m: Img) -> Img:
    out: Img = cv2.warpPerspective(img, m, (CARD_W, CARD_H), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
    return out


def rotate_quad_180(quad: Quad) -> Quad:
    """Same card seen upside down: the corner that was BR becomes TL."""
    return np.roll(np.asarray(quad, np.float32), 2, axis=0)


def to_original(points: Quad, m_inv: Img) -> Quad:
    pts = np.asarray(points, np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(pts, m_inv).reshape(-1, 2)


def is_photocopy(img: Img) -> bool:
    """Copies are grey: almost no saturation anywhere on the card, while even a pale tinted card (or a
    card without a photo) keeps some in its background and ink."""
    hsv = cv2.cvtColor(cv2.resize(img, (212, 134), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2HSV)
    sat = hsv[..., 1].astype(np.float32)
    return float(np.percentile(sat, 50)) < 6.0 and float(np.percentile(sat, 99)) < 40.0


def same_quad(a: Quad, b: Quad, tol: float = 0.002) -> bool:
    """``a`` and ``b`` outline the same card: every corner of one within ``tol`` of the longer side of the other
    (in any order: a quad may start at another corner). A pixel or two: an outline 1 % off is warped and
    detected a little differently, and on a dim photo that read another two fields (unseen seed 13)."""
    a, b = np.asarray(a, np.float32).reshape(4, 2), np.asarray(b, np.float32).reshape(4, 2)
    side = max(float(np.linalg.norm(a[1] - a[0])), float(np.linalg.norm(a[3] - a[0])), 1.0)
    gaps = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2).min(axis=1)
    return bool(gaps.max() <= tol * side)


def covers(old: Quad, new: Quad) -> bool:
    """``new`` is mostly ``old`` (boxes overlap by more than half their union): the finer detection found a
    line already read. A part of an old box (a lone 女 that 640 px merged with its label) is new."""
    ax0, ay0, ax1, ay1 = old[:, 0].min(), old[:, 1].min(), old[:, 0].max(), old[:, 1].max()
    bx0, by0, bx1, by1 = new[:, 0].min(), new[:, 1].min(), new[:, 0].max(), new[:, 1].max()
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return bool(union > 0 and inter / union > 0.5)
