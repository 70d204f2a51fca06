"""The loop analysis: can an output key the function writes match a trigger filter and invoke it again?"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from permit_ocr import guards
from permit_ocr.config import Config
from permit_ocr_local.fcruntime.deployment import (
    Finding,
    Trigger,
    ok,
)

from .events import OSS_PREFIX

OUTPUT_WRITE_EVENTS: Final = (OSS_PREFIX + "PutObject", OSS_PREFIX + "*")  # what a result PutObject fires


def _join_prefix(p1: str, out_prefix: str, p2: str) -> str | None:
    """The start a source key k needs so that k starts with p1 and out_prefix + k starts with p2."""
    if len(out_prefix) >= len(p2):
        return p1 if out_prefix.startswith(p2) else None
    if not p2.startswith(out_prefix):
        return None
    rest = p2[len(out_prefix) :]
    if rest.startswith(p1):
        return rest
    return p1 if p1.startswith(rest) else None


def longer_suffix(a: str, b: str) -> str | None:
    if a.endswith(b):
        return a
    return b if b.endswith(a) else None


def _join_suffix(s1: str, out_suffix: str, s2: str, image_suffixes: Iterable[str]) -> str | None:
    """The end a source key k needs: k ends with s1 and an image suffix, and k + out_suffix ends with s2."""
    if len(out_suffix) >= len(s2):
        if not out_suffix.endswith(s2):
            return None
        need = ""
    elif s2.endswith(out_suffix):
        need = s2[: len(s2) - len(out_suffix)]
    else:
        return None
    tail = longer_suffix(s1, need)
    if tail is None:
        return None
    for img in image_suffixes:  # the function lower-cases the key before testing IMAGE_SUFFIXES
        if tail.lower().endswith(img):
            return tail
        if img.endswith(tail.lower()):
            return img[: len(img) - len(tail)] + tail
    return None


def loop_example(src: Trigger, dst: Trigger, out_prefix: str, out_suffix: str, cfg: Config) -> str | None:
    """A source key that ``src`` fires for and whose output (prefix + key + suffix) ``dst`` fires for, or None.

    Both filters are plain startswith/endswith tests, so the prefix and the suffix constraints are independent:
    a long enough key satisfies both ends at once.
    """
    if not any(e in OUTPUT_WRITE_EVENTS for e in dst.events):
        return None
    head = _join_prefix(src.prefix, out_prefix, dst.prefix)
    tail = _join_suffix(src.suffix, out_suffix, dst.suffix, cfg.image_suffixes)
    if head is None or tail is None:
        return None
    key = f"{head}permit{tail}"
    if guards.is_own_output(key, cfg):  # the function skips its own outputs: no write, no loop
        return None
    return key


def check_output_loops(triggers: Sequence[Trigger], cfg: Config) -> list[Finding]:
    # even with SINKS=mns the function stores a small receipt at the result key, so outputs always exist
    findings: list[Finding] = []
    for t in triggers:
        if cfg.own_prefix and t.prefix.startswith(cfg.own_prefix):
            findings.append(Finding(
                "error", "output-prefix", f"trigger {t.name}: every key under {t.prefix!r} starts with "
                f"OUTPUT_PREFIX {cfg.output_prefix!r}, so the function skips it as its own output",
                "use an OUTPUT_PREFIX outside the trigger prefix (e.g. results/), or '' to write beside images"))
    for src in triggers:
        out_bucket = cfg.output_bucket_for(src.bucket)
        for dst in (t for t in triggers if t.bucket == out_bucket):
            for what, suffix in (("result", cfg.result_suffix), ("error record", cfg.error_suffix)):
                folder = cfg.output_prefix_for(src.bucket)
                key = loop_example(src, dst, folder, suffix, cfg)
                if key is None:
                    continue
                out = f"{folder}{key}{suffix}"
                findings.append(Finding(
                    "error", "output-loop",
                    f"the {what} of {src.bucket}/{key} (trigger {src.name}) is {out_bucket}/{out}, which trigger "
                    f"{dst.name} (prefix {dst.prefix!r}, suffix {dst.suffix!r}) fires for again",
                    "give every trigger an image suffix (.jpg, .png, ...), or move outputs out of the trigger "
                    "prefix (OUTPUT_PREFIX, e.g. results/) or to another bucket (OUTPUT_BUCKET)",
                ))
                break  # one finding per trigger pair is enough
    if not findings:
        where = cfg.output_bucket or "the source bucket"
        findings.append(ok("output-loop", f"no output key ({cfg.output_prefix}<key>{cfg.result_suffix} or "
                           f"{cfg.output_prefix}<key>{cfg.error_suffix} in {where}) matches a trigger filter"))
    return findings
