"""OSS-shaped events of up to K records within FC's async payload limit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from permit_ocr_local.fcruntime.context import Upload, oss_record

from .rules import PAYLOAD_BUDGET, Item

REPLAY_MARK = "permitOcr"  # record key the function reads: {"replay": true} = recognize a final verdict again


def event_record(u: Upload, replay: bool = False) -> dict[str, Any]:
    """The OSS-shaped record of one image; ``replay`` adds the mark that makes the function recognize a
    version again although it holds a permanent verdict for it (``--include-permanent``)."""
    rec = oss_record(u)
    if replay:
        rec[REPLAY_MARK] = {"replay": True}
    return rec


def record_size(u: Upload, replay: bool = False) -> int:
    """Encoded size of one record in an event (``, `` separator included)."""
    return len(json.dumps(event_record(u, replay), ensure_ascii=False).encode()) + 2


def encode_event(uploads: Sequence[Upload], replay: Sequence[bool] = ()) -> bytes:
    marks = list(replay) or [False] * len(uploads)
    return json.dumps({"events": [event_record(u, m) for u, m in zip(uploads, marks, strict=True)]},
                      ensure_ascii=False).encode()


@dataclass
class Batcher:
    """Groups records into events of at most ``k`` records and ``budget`` bytes (FC's async payload limit).
    A record with the replay mark travels alone: if a neighbour failed transiently, FC's retry of the whole
    event would recognize the marked version, already answered, a second time."""

    k: int
    budget: int = PAYLOAD_BUDGET
    items: list[Item] = field(default_factory=list)
    size: int = len(b'{"events": []}')

    def would_overflow(self, item: Item) -> bool:
        alone = item.replay or any(i.replay for i in self.items)
        return bool(self.items) and (alone or self.size + _size(item) > self.budget)

    def add(self, item: Item) -> bool:
        """Add; True when the batch is full (send it now)."""
        self.items.append(item)
        self.size += _size(item)
        return len(self.items) >= self.k or item.replay

    def take(self) -> list[Item]:
        out, self.items, self.size = self.items, [], len(b'{"events": []}')
        return out


def _size(item: Item) -> int:
    return record_size(item.upload, item.replay) if item.upload is not None else 0


