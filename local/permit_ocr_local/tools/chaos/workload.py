"""The chaos run's workload: uploads of every awkward kind (seeded), what each kind must end as, and the
malformed events sent straight to the invoker."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from permit_ocr_local.standins.ocr.rules import MAX_IMAGE_BYTES
from permit_ocr_local.standins.ocr.truthmark import embed_truth
from permit_ocr_local.synth.fields import random_fields

OVERSIZE_BYTES = MAX_IMAGE_BYTES + 64 * 1024  # just over the OCR API's 10 MB

# What each kind of upload must end as (its CURRENT version): "result", "error:<code>" (a permanent error
# record), "transient" (a transient error record: only acceptable once FC gave the event up to onFailure).
EXPECT: dict[str, frozenset[str]] = {
    "permit": frozenset({"result"}),
    "hostile": frozenset({"result"}),  # a permit under an awkward key
    "overwrite": frozenset({"result"}),  # the second version is a permit too
    "notpermit": frozenset({"error:unmatchedImageType"}),
    "corrupt": frozenset({"error:unsupportedImageFormat"}),
    "truncated": frozenset({"error:unsupportedImageFormat", "error:unmatchedImageType"}),
    "nonimage": frozenset({"error:unsupportedImageFormat"}),
    "tiny": frozenset({"error:illegalImageSize"}),
    "ratio": frozenset({"error:illegalImageSize"}),
    "empty": frozenset({"error:illegalImageContent"}),
    "oversize": frozenset({"error:exceededImageContent"}),
    "failing": frozenset({"transient"}),  # OCR answers algorithmError every time
    "slowover": frozenset({"result"}),  # overwritten while the first version's OCR call is still running
    "reupload": frozenset({"result"}),  # uploaded, deleted, and the same bytes uploaded again
    "crash": frozenset({"result"}),  # the first instance dies at a random request; FC retries the event
}
# uploads of one item that carry the same bytes (a re-upload): each may be paid for, the others not
SAME_BYTES_KINDS = frozenset({"reupload"})
# the precheck or a guard must stop these before OCR is asked
PRECHECKED = frozenset({"corrupt", "nonimage", "tiny", "ratio", "empty", "oversize"})
# share of the upload slots per kind (an overwrite takes two uploads); oversize is a fixed small count
MIX: dict[str, float] = {
    "permit": 0.58, "hostile": 0.10, "overwrite": 0.05, "notpermit": 0.05, "corrupt": 0.03, "truncated": 0.03,
    "nonimage": 0.03, "tiny": 0.02, "ratio": 0.02, "empty": 0.01, "failing": 0.002,
    "slowover": 0.01, "reupload": 0.02, "crash": 0.02,
}
DUP_SEQ, DUP_CONCURRENT = 0.05, 0.05  # share of images whose event is delivered twice
DUP_KINDS = frozenset({"permit", "hostile", "notpermit", "overwrite"})



@dataclass
class Item:
    """One key and the versions uploaded to it (two for an overwrite)."""

    kind: str
    key: str
    versions: list[bytes]
    truths: list[dict[str, str] | None]
    dup: str = ""  # "" | "seq" (delivered again later) | "concurrent" (delivered twice at once)
    etags: list[str] = field(default_factory=list)  # filled by the upload
    doubt: bool = False  # OCR_BACKEND=cascade runs: the engine is unsure of a field, so the cascade pays the API

    @property
    def etag(self) -> str | None:
        return self.etags[-1] if len(self.etags) == len(self.versions) else None


@dataclass
class Workload:
    items: list[Item]
    malformed: list[bytes]  # events submitted straight to the invoker
    uploads: int

    def truths(self) -> Iterator[dict[str, str]]:
        for item in self.items:
            yield from (t for t in item.truths if t)


class _Images:
    """Tiny images, made once; per-image content differs by the truth embedded in it."""

    def __init__(self, size: tuple[int, int]) -> None:
        from PIL import Image

        def encode(sz: tuple[int, int], fmt: str) -> bytes:
            buf = io.BytesIO()
            Image.new("RGB", sz, (200, 210, 230)).save(buf, fmt)
            return buf.getvalue()

        self.png, self.jpeg = encode(size, "PNG"), encode(size, "JPEG")
        self.tiny, self.ratio = encode((12, 12), "PNG"), encode((2000, 20), "PNG")
        self._oversize: bytes | None = None

    def oversize(self) -> bytes:
        """A valid PNG header, then one private chunk that takes it past 10 MB (built once, reused)."""
        if self._oversize is None:
            import struct
            import zlib

            pad = bytes(OVERSIZE_BYTES)
            chunk = struct.pack(">I", len(pad)) + b"chAo" + pad + struct.pack(">I", zlib.crc32(b"chAo" + pad))
            self._oversize = self.png[:33] + chunk + self.png[33:]  # after the 8-byte signature + IHDR
        return self._oversize


SUFFIXES_PNG = (".png", ".png", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")  # content sniffed, not named
SUFFIXES_JPEG = (".jpg", ".jpeg")


def _hostile_key(prefix: str, i: int, truth: dict[str, str], rng: random.Random, suffix: str) -> str:
    name, number = truth["nameCn"], truth["permitNumber"]
    style = rng.randrange(8)
    if style == 0:
        return f"{prefix}scans 2024/permit {i} copy (1){suffix}"
    if style == 1:
        return f"{prefix}a+b/{i}+plus+{name}{suffix}"
    if style == 2:
        return f"{prefix}100%/{i}%20x%2Fy%E4%BD%A0{suffix}"
    if style == 3:
        return f"{prefix}证件/{name}_{number}_{i}{suffix}"  # keys carry names: logs must not
    if style == 4:
        return f"{prefix}q?x=1&y=2#frag;{i}=@!$'(){suffix}"
    if style == 5:
        return prefix + "/".join(f"d{n}" for n in range(40)) + f"/{i}{suffix}"  # deep folders
    if style == 6:  # ~900 bytes: folders of 100 bytes (file names stay under 255 bytes on disk)
        return prefix + "/".join(f"{n}" + "长" * 33 for n in range(8)) + f"/{i}-{'x' * 80}{suffix}"
    return f"{prefix} leading space/trailing space {i} 📄 emoji{suffix}"


def _truncate(data: bytes, rng: random.Random) -> bytes:
    """Cut inside the signature/IHDR or inside the truth chunk: never a whole, readable permit."""
    truth_end = 33 + 12 + int.from_bytes(data[33:37], "big")
    return data[: rng.randrange(9, truth_end - 1)]


# the engine's view of a doubted permit (fcruntime/enginefn.py reads it): one field under REVIEW_MIN_PROB
ENGINE_DOUBT: dict[str, Any] = {"valueProb": {"nameCn": 40}}


def build_workload(uploads: int, seed: int, prefix: str = "uploads/", size: tuple[int, int] = (40, 40),
                   malformed_share: float = 0.01, max_oversize: int = 20, doubt_share: float = 0.0) -> Workload:
    """``doubt_share``: permits whose truth tells the engine function (truth recognizer) to be unsure, drawn
    from their own random stream, so a run without doubts is the same workload as before they existed."""
    rng = random.Random(seed)
    doubts = random.Random(seed + 7919)
    img = _Images(size)
    items: list[Item] = []
    kinds, weights = list(MIX), list(MIX.values())
    n_oversize = max(1, min(max_oversize, uploads // 500))
    count = n_oversize
    for i in range(n_oversize):
        items.append(Item("oversize", f"{prefix}big/{i}-scan.png", [img.oversize()], [None]))
    i = 0
    while count < uploads:
        i += 1
        kind = rng.choices(kinds, weights)[0]
        if kind in ("overwrite", "slowover", "reupload") and uploads - count < 2:
            kind = "permit"
        truth = random_fields(rng, rng.choice(("hk", "macao", "taiwan")))
        jpeg = rng.random() < 0.3
        base, suffix = (img.jpeg, rng.choice(SUFFIXES_JPEG)) if jpeg else (img.png, rng.choice(SUFFIXES_PNG))
        key = f"{prefix}batch-{i % 64:02d}/{i:06d}-{truth['permitNumber']}{suffix}"
        truths: list[dict[str, str] | None] = [truth]
        doubt = doubt_share > 0 and kind in ("permit", "hostile", "crash") and doubts.random() < doubt_share
        if kind in ("permit", "hostile", "crash"):
            if kind == "hostile":
                key = _hostile_key(prefix, i, truth, rng, suffix)
            versions = [embed_truth(base, {**truth, "engine": ENGINE_DOUBT} if doubt else truth)]
        elif kind == "slowover":  # the first version's OCR call takes a second; the second arrives meanwhile
            second = random_fields(rng, "taiwan")
            versions = [embed_truth(base, {**truth, "delay": "1.0"}), embed_truth(base, second)]
            truths = [truth, second]
        elif kind == "reupload":
            versions = [embed_truth(base, truth)] * 2
            truths = [truth, truth]
        elif kind == "overwrite":
            second = random_fields(rng, "hk")
            versions, truths = [embed_truth(base, truth), embed_truth(base, second)], [truth, second]
        elif kind == "notpermit":
            # no truth: "not a permit" (unmatchedImageType); bytes after the end marker keep each one distinct
            versions, truths = [base + f"cat photo {i}".encode()], [None]
        elif kind == "corrupt":
            versions, truths = [b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randrange(64, 4096))], [None]
            key = key.rsplit(".", 1)[0] + ".png"
        elif kind == "truncated":
            versions = [_truncate(embed_truth(img.png, truth), rng)]
            key = key.rsplit(".", 1)[0] + ".png"
        elif kind == "nonimage":
            body, ext = rng.choice(((b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", ".jpg"), (b"hello, not an image\n", ".png"),
                                    (b"PK\x03\x04\x14\x00", ".gif"), (b"<html><body>", ".webp")))
            versions, truths = [body + str(i).encode() * 20], [None]
            key = key.rsplit(".", 1)[0] + ext
        elif kind == "tiny":
            versions, key = [embed_truth(img.tiny, truth)], key.rsplit(".", 1)[0] + ".png"
        elif kind == "ratio":
            versions, key = [embed_truth(img.ratio, truth)], key.rsplit(".", 1)[0] + ".png"
        elif kind == "empty":
            versions, truths, key = [b""], [None], key.rsplit(".", 1)[0] + ".png"
        else:  # failing: the OCR stand-in answers algorithmError for it, every time
            versions, truths = [embed_truth(img.png, {"error": "algorithmError", "n": str(i)})], [None]
            key = key.rsplit(".", 1)[0] + ".png"
        dup = ""
        if kind in DUP_KINDS:
            x = rng.random()
            dup = "seq" if x < DUP_SEQ else "concurrent" if x < DUP_SEQ + DUP_CONCURRENT else ""
        items.append(Item(kind, key, versions, truths, dup, doubt=doubt))
        count += len(versions)
    rng.shuffle(items)
    return Workload(items, malformed_events(max(5, int(uploads * malformed_share)), prefix, rng), count)


def malformed_events(n: int, prefix: str, rng: random.Random) -> list[bytes]:
    """Events FC could hand over but no OSS trigger would produce: none of them may cost a call or a write."""
    rec = {"eventName": "ObjectCreated:PutObject", "eventSource": "acs:oss", "region": "cn-hangzhou"}
    shapes: list[Any] = [
        b"", b"not json at all", b"[]", b"null", b'{"events": "x"}', b"\xff\xfe\x00garbage",
        {"events": [{}]},
        {"events": [{**rec, "oss": {"bucket": {"name": "permit-ocr-demo"}}}]},  # no key
        {"events": [{**rec, "oss": {"bucket": {"name": "permit-ocr-demo"}, "object": {"key": ""}}}]},
        {"events": [{**rec, "eventName": "ObjectRemoved:DeleteObject",
                     "oss": {"bucket": {"name": "permit-ocr-demo"}, "object": {"key": f"{prefix}gone.png"}}}]},
        {"events": [{**rec, "oss": {"bucket": {"name": "someone-elses-bucket"},
                                    "object": {"key": f"{prefix}x.png", "size": 10}}}]},
        {"events": [1, "two", None]},
    ]
    out = []
    for _ in range(n):
        shape = rng.choice(shapes)
        out.append(shape if isinstance(shape, bytes) else orjson.dumps(shape))
    return out


