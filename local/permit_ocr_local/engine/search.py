"""Where a card may be in a frame, at any scale: the whole frame first, then the regions that hold detail.

A card that fills a phone photo shows its text to a 320-px detection of the whole frame. A card a third of an
A4 copier page wide, a card inside a phone's screenshot or one in the corner of a large photo does not: its
text is two or three pixels high at that scale. So the frame is looked at a second way before anything is
refused: the regions of the frame that hold detail (print, a photo, a card's edge) are cut out at full
resolution, largest first, and each is searched as a frame of its own (the card then fills it). Paper, a
screen's flat background, a copier's speckle and the dark band along a page's edge hold no such region.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

Img = np.ndarray[Any, Any]
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels

_DARK = 170  # an image whose brightest part (99.5th percentile) is darker than this was taken in a dim room
_SIDE = 1024  # where detail is needs no finer look
_MIN_AREA = 0.004  # a region smaller than this share of the frame holds no readable card
_MAX_AREA = 0.7  # a region this large is the frame itself: the first look covered it
_GAP = 0.06  # blobs closer than this share of the frame's side are one region (a card's rows, its photo)
_BAND = 0.06  # detail within this share of the frame's side from its border is a copier lid's or a scanner's edge
_BLOCK = 3.0  # a detected box narrower than this many of its heights is a block of print, no line (a title is 15+)
_GROW = 0.3  # a region is cut out with this margin on each side: a card's faint edge or column may lie outside


def normalized(img: Img) -> Img:
    """A dark image (a dim room: even its brightest part is grey) with its brightness stretched to the full
    range: the detector and the recognizer were trained on well exposed print. Anything else is returned as is
    (stretching a daylight photo's range moved its glare and cost a lone 女 in a test)."""
    step = max(1, round((img.shape[0] * img.shape[1] / 250_000) ** 0.5))  # a sample is enough for percentiles
    lo, hi = (float(v) for v in np.percentile(img[::step, ::step], (1, 99.5)))
    if hi >= _DARK or hi - lo < 30:  # bright enough, or flat (a blank frame: nothing to bring out)
        return img
    out: Img = np.clip((img.astype(np.float32) - lo) * (240.0 / (hi - lo)), 0, 255).astype(np.uint8)
    return out


def is_bilevel(img: Img) -> bool:
    """A black-and-white copy: grey, and nearly every pixel near black or white (thresholded or halftoned
    print, speckle), where a phone photo of even a grey copy has mid-tones."""
    step = max(1, round((img.shape[0] * img.shape[1] / 250_000) ** 0.5))
    sample = img[::step, ::step].astype(np.int16)
    grey = float(np.abs(sample - sample.mean(axis=-1, keepdims=True)).mean()) < 3.0
    return grey and float(((sample < 50) | (sample > 205)).mean()) > 0.85


def for_detection(img: Img, bilevel: bool) -> Img:
    """What the text detector is shown: a black-and-white copy blurred a little first (its speckle and the
    steps of its broken strokes hide the lines from a detector trained on photographed print: 2 of a copied
    card's 10 lines found as it is, 9 blurred); anything else as it is."""
    return cv2.GaussianBlur(img, (0, 0), 1.0) if bilevel else img


def detail_regions(img: Img, limit: int = 3) -> list[Box]:
    """Up to ``limit`` boxes around the frame's regions of detail, largest first; none that is the frame.

    Detail is a strong local contrast (a stroke, a photo's edge), found on a 1024-px copy after a median
    filter (speckle and JPEG noise are single pixels) and closed into blobs over about 1/40 of the frame, so a
    card's lines, labels and photo make one region. A thin strip along the frame's border (a copier's lid
    shadow, a phone's status bar) is not a card.
    """
    h, w = img.shape[:2]
    s = min(1.0, _SIDE / max(h, w))
    small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else img
    gray = cv2.medianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), 3)
    grad = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    otsu, _ = cv2.threshold(grad, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask: Img = (grad > max(float(otsu), 30.0)).astype(np.uint8) * 255
    sh, sw = mask.shape
    k = max(3, round(max(sh, sw) / 40))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # specks the median left
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    edge = _edge_bands(labels, n, _BAND * max(sw, sh))
    parts = [(int(x), int(y), int(x + bw), int(y + bh)) for i, (x, y, bw, bh, _a) in enumerate(stats[1:n], start=1)
             if i not in edge]
    out: list[Box] = []
    for x0, y0, x1, y1 in _merged(parts, _GAP * max(sw, sh)):
        bw, bh = x1 - x0, y1 - y0
        if not _MIN_AREA * sh * sw <= bw * bh <= _MAX_AREA * sh * sw:
            continue
        gx, gy = _GROW * bw, _GROW * bh
        out.append((max(0, int((x0 - gx) / s)), max(0, int((y0 - gy) / s)),
                    min(w, int((x1 + gx) / s)), min(h, int((y1 + gy) / s))))
    out.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
    return out[:limit]


def is_line(box: Img) -> bool:
    """A detected box is a line of print when it is at least _BLOCK of its heights wide; a narrower one is a
    block of print run together (a card seen small) or a sheet of paper the detector boxed whole."""
    q = np.asarray(box, np.float32).reshape(-1, 2)
    return float(np.linalg.norm(q[1] - q[0])) >= _BLOCK * float(np.linalg.norm(q[3] - q[0]))


def around_text(boxes: list[Img], shape: tuple[int, int]) -> Box | None:
    """A window around a few text lines seen too small to read, large enough to hold a card they belong to:
    a card's title is about half its width, so three times the lines' extent (at least 20 line heights)
    around their centre holds the card whichever of its lines they are. Boxes no wider than a few of their
    heights are no lines but whole blocks of print run together (a card a fifth of a large photo wide, seen
    at 640 px, is one box): the window is then half as large again as their extent. None when that is most
    of the frame already (looking there again would see the same)."""
    h, w = shape
    quads = [np.asarray(b, np.float32).reshape(-1, 2) for b in boxes]
    pts = np.concatenate(quads)
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    if not any(is_line(q) for q in quads):
        side = 1.5 * max(float(x1 - x0), float(y1 - y0))
    else:
        line = float(np.median([np.ptp(q[:, 1]) for q in quads]))
        side = max(3.0 * float(x1 - x0), 3.0 * float(y1 - y0), 20.0 * line)
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, side / 2
    box = (max(0, int(cx - r)), max(0, int(cy - r)), min(w, int(cx + r)), min(h, int(cy + r)))
    if (box[2] - box[0]) * (box[3] - box[1]) > 0.5 * h * w:
        return None
    return box


def _edge_bands(labels: Img, n: int, depth: float) -> set[int]:
    """The blobs that lie along the frame's border, nearly all of them within ``depth`` of it: a copier lid's
    shadow along one edge, or two (an L that spans the page: joined with the card it would make one region as
    large as the page, which is no region at all), a phone's status bar. A card in a corner reaches further in."""
    h, w = labels.shape
    d = max(1, int(depth))
    inner = np.zeros((h, w), bool)
    inner[d:h - d, d:w - d] = True
    border = np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1]))
    out = set()
    for i in {int(v) for v in np.unique(border)} - {0}:
        blob = labels == i
        if float(blob[inner].sum()) < 0.1 * float(blob.sum()):
            out.add(i)
    return out


def _merged(boxes: list[Box], gap: float) -> list[Box]:
    """Boxes closer than ``gap`` to each other joined into one (a card's title, its lines and its photo are
    separate blobs of detail a line's spacing apart), until none is."""
    out = list(boxes)
    changed = True
    while changed:
        changed = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if max(a[0] - b[2], b[0] - a[2]) < gap and max(a[1] - b[3], b[1] - a[3]) < gap:
                    out[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del out[j]
                    changed = True
                    break
            if changed:
                break
    return out
