"""The chaos run's workload: uploads of every awkward kind (seeded), what each kind must end as, the scripted
kinds that bring time and other writers into the world, the many-record events, and the malformed events sent
straight to the invoker."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from permit_ocr_local.standins.ocr.rules import MAX_IMAGE_BYTES
from permit_ocr_local.standins.ocr.truthmark import embed_truth
from permit_ocr_local.synth.fields import random_fields

from . import cascade

OVERSIZE_BYTES = MAX_IMAGE_BYTES + 64 * 1024  # just over the OCR API's 10 MB
SCRIPTED = "scripted/"  # folder of the scripted kinds' keys: plain names, so fault-rule patterns match them exactly
BATCH_PREFIX = "import/"  # many-record events: images the trigger does not see (as backfill finds them)

# What each kind of upload must end as (its CURRENT version), once faults are off and FC's retries, replay and
# backfill have run: "result" or "error:<code>" (a final error record with the image's verdict).
EXPECT: dict[str, frozenset[str]] = {
    "permit": frozenset({"result"}),
    "hostile": frozenset({"result"}),  # a permit under an awkward key
    "overwrite": frozenset({"result"}),  # the second version is a permit too
    "notpermit": frozenset({"error:unmatchedImageType"}),
    "corrupt": frozenset({"error:unsupportedImageFormat"}),
    "truncated": frozenset({"error:unsupportedImageFormat", "error:unmatchedImageType"}),
    "nonimage": frozenset({"error:unsupportedImageFormat", "error:illegalPDFContent"}),  # %PDF: a damaged PDF
    "tiny": frozenset({"error:illegalImageSize"}),
    "ratio": frozenset({"error:illegalImageSize"}),
    "empty": frozenset({"error:illegalImageContent"}),
    # over the API's 10 MB: converted (a small JPEG is paid for), and a plain picture is no permit
    "oversize": frozenset({"error:unmatchedImageType"}),
    "failing": frozenset({"result"}),  # OCR answers algorithmError until the end (the service recovers)
    "slowover": frozenset({"result"}),  # overwritten while the first version's OCR call is still running
    "reupload": frozenset({"result"}),  # uploaded, deleted, and the same bytes uploaded again
    "crash": frozenset({"result"}),  # the first instance dies at a random request; FC retries the event
    # -- the world has time and other writers ---------------------------------------------------------------
    "expiry": frozenset({"result"}),  # its holder is stuck in a slow publish past its claim; a taker-over runs
    "slowpub": frozenset({"result"}),  # publishes take seconds; half are overwritten meanwhile
    "brownout": frozenset({"result"}),  # OSS answers 503 to every request for seconds after its paid call
    "longoutage": frozenset({"result"}),  # its keys' OSS requests fail for longer than the claim's store budget
    "lostanswer": frozenset({"result"}),  # OCR answers after OCR_READ_TIMEOUT_MS: billed, never received
    "policy": frozenset({"result"}),  # a policy denies reading it for a while (before, or after its result)
    "kms": frozenset({"result"}),  # SSE-KMS; its key is disabled or forbidden for a while
    "archive": frozenset({"result"}),  # Archive class: unreadable until restored
    "lifecycle": frozenset({"result"}),  # its markers expire (30 days pass), then it is delivered again
    "handdelete": frozenset({"result"}),  # its markers are deleted by hand minutes after upload, then redelivered
    "userdelete": frozenset({"result"}),  # a user deletes its result; backfill or a redelivery finds it again
    "twobucket": frozenset({"result"}),  # the same key in both source buckets, different permits
    "review": frozenset({"result"}),  # needs review; the review page saves it while the function runs
    "batch": frozenset({"result"}),  # one record of a 20-100 record event near its FC deadline
}
# uploads of one item that carry the same bytes (a re-upload): each may be paid for, the others not
SAME_BYTES_KINDS = frozenset({"reupload"})
# the precheck or a guard must stop these before OCR is asked
PRECHECKED = frozenset({"corrupt", "nonimage", "tiny", "ratio", "empty"})
# share of the upload slots per kind, drawn at random (an overwrite takes two uploads)
MIX: dict[str, float] = {
    "permit": 0.50, "hostile": 0.08, "overwrite": 0.04, "notpermit": 0.04, "corrupt": 0.02, "truncated": 0.02,
    "nonimage": 0.02, "tiny": 0.015, "ratio": 0.015, "empty": 0.01, "slowover": 0.01, "reupload": 0.02,
    "crash": 0.02,
}
# the scripted kinds: max(minimum, round(share x uploads)) of each, so a small run still plays every one
COUNTED: dict[str, tuple[float, int]] = {
    "oversize": (0.002, 1), "failing": (0.002, 1), "expiry": (0.002, 2), "slowpub": (0.01, 2),
    "brownout": (0.001, 2), "longoutage": (0.0005, 1), "lostanswer": (0.001, 2), "policy": (0.01, 2),
    "kms": (0.005, 2), "archive": (0.005, 2), "lifecycle": (0.01, 2), "handdelete": (0.001, 2),
    "userdelete": (0.005, 2), "twobucket": (0.01, 2), "review": (0.01, 2),
}
BATCH_SHARE, BATCH_MIN, BATCH_MAX = 0.05, 20, 100  # images sent in many-record events; records per event
MAX_OVERSIZE = 20  # 10 MB each, built once
DUP_SEQ, DUP_CONCURRENT = 0.05, 0.05  # share of images whose event is delivered twice
DUP_KINDS = frozenset({"permit", "hostile", "notpermit", "overwrite", "review", "twobucket", "policy"})
# kinds whose scripts hold an instance for seconds (outages, held publishes, late answers): spread over the first
# half of the uploads, so their waits overlap the rest instead of holding every instance at once
EARLY = frozenset({"longoutage", "expiry", "lostanswer", "slowpub"})
TWO_VERSIONS = frozenset({"overwrite", "slowover", "reupload"})


@dataclass
class Item:
    """One key in one source bucket and the versions uploaded to it (two for an overwrite)."""

    kind: str
    key: str
    versions: list[bytes]
    truths: Sequence[dict[str, str] | None]
    dup: str = ""  # "" | "seq" (delivered again later) | "concurrent" (delivered twice at once)
    bucket: str = ""  # "" = the deployment's bucket; else the second source bucket
    variant: str = ""  # how a scripted kind plays out (see harness); e.g. "before" | "after", "over"
    group: int = -1  # batch: the many-record event it is sent in
    corrected: dict[str, str] | None = None  # review: the fields the reviewer saves
    etags: list[str] = field(default_factory=list)  # filled by the upload
    doubt: bool = False  # OCR_BACKEND=cascade runs: the engine is unsure of a field, so the cascade pays the API
    uploaded_at: list[float] = field(default_factory=list)  # time.time() of each upload

    @property
    def etag(self) -> str | None:
        return self.etags[-1] if len(self.etags) == len(self.versions) else None


@dataclass
class Workload:
    items: list[Item]
    malformed: list[bytes]  # events submitted straight to the invoker
    uploads: int
    batches: dict[int, list[Item]]  # group -> its records, in event order

    def truths(self) -> Iterator[dict[str, str]]:
        for item in self.items:
            yield from (t for t in item.truths if t)
            if item.corrected:
                yield item.corrected


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


def needs_review(truth: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """A permit whose birth date lies after its validity starts (the checks flag it for review), and the fields
    a reviewer saves: the true birth date."""
    start = truth["validPeriod"].split("-")[0]
    flagged = {**truth, "birthDate": f"{int(start[:4]) + 1}{start[4:]}"}
    return flagged, {**truth}


class _Builder:
    def __init__(self, rng: random.Random, img: _Images, prefix: str, second: str) -> None:
        self.rng, self.img, self.prefix, self.second = rng, img, prefix, second
        self.i = 0

    def permit(self, kind: str = "hk") -> tuple[dict[str, str], bytes, str]:
        """A permit's truth, its image, and a suffix matching the image."""
        truth = random_fields(self.rng, self.rng.choice(("hk", "macao", "taiwan")) if kind == "any" else kind)
        jpeg = self.rng.random() < 0.3
        base, suffix = ((self.img.jpeg, self.rng.choice(SUFFIXES_JPEG)) if jpeg
                        else (self.img.png, self.rng.choice(SUFFIXES_PNG)))
        return truth, embed_truth(base, truth), suffix

    def item(self, kind: str) -> list[Item]:
        self.i += 1
        i, rng, img = self.i, self.rng, self.img
        truth, data, suffix = self.permit("any")
        key = f"{self.prefix}batch-{i % 64:02d}/{i:06d}-{truth['permitNumber']}{suffix}"
        scripted = f"{self.prefix}{SCRIPTED}{kind}-{i:06d}.png"
        png = embed_truth(img.png, truth)
        if kind in ("permit", "hostile", "crash", "lifecycle", "userdelete", "handdelete"):
            key = _hostile_key(self.prefix, i, truth, rng, suffix) if kind == "hostile" else key
            return [Item(kind, key, [data], [truth])]
        if kind == "slowover":  # the first version's OCR call takes a second; the second arrives meanwhile
            second = random_fields(rng, "taiwan")
            return [Item(kind, key, [embed_truth(img.png, {**truth, "delay": "1.0"}), embed_truth(img.png, second)],
                         [truth, second])]
        if kind == "reupload":
            return [Item(kind, key, [data, data], [truth, truth])]
        if kind == "overwrite":
            second = random_fields(rng, "hk")
            return [Item(kind, key, [data, embed_truth(img.png if suffix in SUFFIXES_PNG else img.jpeg, second)],
                         [truth, second])]
        if kind == "notpermit":  # no truth: bytes after the end marker keep each one distinct
            return [Item(kind, key, [img.png + f"cat photo {i}".encode()], [None])]
        png_key = key.rsplit(".", 1)[0] + ".png"
        if kind == "corrupt":
            return [Item(kind, png_key, [b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randrange(64, 4096))], [None])]
        if kind == "truncated":
            return [Item(kind, png_key, [_truncate(png, rng)], [truth])]
        if kind == "nonimage":
            body, ext = rng.choice(((b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", ".jpg"), (b"hello, not an image\n", ".png"),
                                    (b"PK\x03\x04\x14\x00", ".gif"), (b"<html><body>", ".webp")))
            return [Item(kind, key.rsplit(".", 1)[0] + ext, [body + str(i).encode() * 20], [None])]
        if kind == "tiny":
            return [Item(kind, png_key, [embed_truth(img.tiny, truth)], [truth])]
        if kind == "ratio":
            return [Item(kind, png_key, [embed_truth(img.ratio, truth)], [truth])]
        if kind == "empty":
            return [Item(kind, png_key, [b""], [None])]
        if kind == "oversize":
            return [Item(kind, f"{self.prefix}big/{i}-scan.png", [img.oversize()], [None])]
        if kind == "twobucket":  # the same key, a different permit in each source bucket
            other = random_fields(rng, "macao")
            return [Item(kind, key, [data], [truth]),
                    Item(kind, key, [embed_truth(img.png if suffix in SUFFIXES_PNG else img.jpeg, other)], [other],
                         bucket=self.second)]
        if kind == "review":
            flagged, fixed = needs_review(random_fields(rng, "hk"))
            over = rng.random() < 0.25  # a newer version arrives while the reviewer works
            versions, truths = [embed_truth(img.png, flagged)], [flagged]
            if over:
                later = random_fields(rng, "hk")
                versions, truths = [*versions, embed_truth(img.png, later)], [*truths, later]
            return [Item(kind, png_key, versions, truths, variant="over" if over else "", corrected=fixed)]
        if kind == "slowpub":
            over = rng.random() < 0.5
            versions, truths = [png], [truth]
            if over:  # uploaded while the first version's publish is held
                later = random_fields(rng, "hk")
                versions, truths = [png, embed_truth(img.png, later)], [truth, later]
            return [Item(kind, scripted, versions, truths, variant="over" if over else "")]
        if kind in ("policy", "kms"):
            return [Item(kind, scripted, [png], [truth], variant=rng.choice(("before", "after")))]
        if kind in ("archive", "expiry", "brownout", "longoutage", "lostanswer"):
            return [Item(kind, scripted, [png], [truth])]
        if kind == "failing":
            return [Item(kind, scripted, [png], [truth])]
        raise ValueError(f"unknown kind {kind!r}")


def build_workload(uploads: int, seed: int, prefix: str = "uploads/", size: tuple[int, int] = (40, 40),
                   malformed_share: float = 0.01, second_bucket: str = "permit-ocr-second",
                   doubt_share: float | None = None) -> Workload:
    """``doubt_share`` (a cascade's run): plain permits the engine function doubts (cascade.py); None: the
    engine, if any, is sure of every permit."""
    rng = random.Random(seed)
    build = _Builder(rng, _Images(size), prefix, second_bucket)
    items: list[Item] = []
    for kind, (share, minimum) in COUNTED.items():
        n = max(minimum, round(share * uploads))
        for _ in range(min(n, MAX_OVERSIZE) if kind == "oversize" else n):
            items += _with_dup(build.item(kind), rng)
    batches: dict[int, list[Item]] = {}
    n_batch = round(BATCH_SHARE * uploads)
    while n_batch >= BATCH_MIN:
        size_ = min(n_batch, rng.randint(BATCH_MIN, BATCH_MAX))
        if n_batch - size_ < BATCH_MIN:
            size_ = n_batch
        group = len(batches)
        batches[group] = []
        for _ in range(size_):
            build.i += 1
            truth, data, suffix = build.permit("any")
            key = f"{BATCH_PREFIX}event-{group:03d}/{build.i:06d}-{truth['permitNumber']}{suffix}"
            batches[group].append(Item("batch", key, [data], [truth], group=group))
        items += batches[group]
        n_batch -= size_
    count = sum(len(it.versions) for it in items)
    kinds, weights = list(MIX), list(MIX.values())
    drawn: list[Item] = []
    while count < uploads:
        kind = rng.choices(kinds, weights)[0]
        if kind in TWO_VERSIONS and uploads - count < 2:
            kind = "permit"
        new = _with_dup(build.item(kind), rng)
        drawn += new
        count += sum(len(it.versions) for it in new)
    items += drawn
    if doubt_share is not None:  # after every draw of ``rng``: the same workload as without doubts, doubted
        cascade.doubt(items, frozenset(COUNTED) | {"slowover"}, doubt_share, seed)
    rng.shuffle(items)
    malformed = malformed_events(max(5, int(uploads * malformed_share)), prefix, rng)
    return Workload(_spread_early(items, rng), malformed, count, batches)


def _spread_early(items: list[Item], rng: random.Random) -> list[Item]:
    early = [it for it in items if it.kind in EARLY]
    rest = [it for it in items if it.kind not in EARLY]
    for it in early:
        rest.insert(rng.randint(0, len(rest) // 2), it)
    return rest


def _with_dup(items: list[Item], rng: random.Random) -> list[Item]:
    for it in items:
        if it.kind in DUP_KINDS:
            x = rng.random()
            it.dup = "seq" if x < DUP_SEQ else "concurrent" if x < DUP_SEQ + DUP_CONCURRENT else ""
    return items


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
