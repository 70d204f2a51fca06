"""Topics, published messages and HTTP push subscriptions of the MNS stand-in; no HTTP parsing here.

Every published message is kept in memory (for tests) and, when a root directory is given, appended as one
JSON line to ``ROOT/.mns/<topic>.jsonl`` so a person can read what the function published. Subscriptions get
each message from one background thread that hands it to ``push`` (the HTTP side), so a slow or dead endpoint
never delays a publish.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import topic_not_exist
from .model import Delivery, PublishedMessage, Subscription, body_md5
from .push import PUSH_TIMEOUT_S, deliver


@dataclass
class _Topic:
    messages: list[PublishedMessage] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)


class MnsState:
    def __init__(self, root: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.log_dir = root / ".mns" if root is not None else None
        self.clock = clock
        self.deliveries: list[Delivery] = []
        self._topics: dict[str, _Topic] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._pushes: queue.Queue[tuple[Subscription, PublishedMessage] | None] = queue.Queue()
        self._pusher: threading.Thread | None = None
        self._closed = threading.Event()

    # --- topics and subscriptions -------------------------------------------------------------------

    def create_topic(self, name: str) -> None:
        with self._lock:
            self._topics.setdefault(name, _Topic())

    def has_topic(self, name: str) -> bool:
        with self._lock:
            return name in self._topics

    def subscribe(self, topic: str, url: str, *, name: str | None = None, filter_tag: str | None = None,
                  content_format: str = "SIMPLIFIED") -> Subscription:
        if content_format not in ("SIMPLIFIED", "XML"):
            raise ValueError(f"content_format must be SIMPLIFIED or XML, not {content_format!r}")
        with self._lock:
            t = self._topics.get(topic)
            if t is None:
                raise topic_not_exist()
            sub = Subscription(topic, name or f"sub-{len(t.subscriptions) + 1}", url, filter_tag, content_format)
            t.subscriptions.append(sub)
            if self._pusher is None:
                self._pusher = threading.Thread(target=self._push_loop, name="mns-push", daemon=True)
                self._pusher.start()
        return sub

    def reset(self) -> None:
        """Forget messages, subscriptions and queued pushes; keep topics (the log files are left as they are)."""
        with self._lock:
            self._topics = {name: _Topic() for name in self._topics}
            self.deliveries.clear()
        with contextlib.suppress(queue.Empty):
            while True:
                self._pushes.get_nowait()

    # --- messages ---------------------------------------------------------------------------------

    def publish(self, topic: str, body: str, tag: str = "", attributes: dict[str, str] | None = None,
                ) -> PublishedMessage:
        now = self.clock()
        with self._lock:
            t = self._topics.get(topic)
            if t is None:
                raise topic_not_exist()
            # shaped like real ids (D273CD6A89564E54-1-15180395A19-200000001): unique, roughly time-ordered
            mid = f"{uuid.uuid4().hex[:16].upper()}-1-{int(now * 1000):X}-{200000000 + next(self._seq)}"
            msg = PublishedMessage(topic, mid, body, tag, dict(attributes or {}), now, body_md5(body))
            t.messages.append(msg)
            self._append_log(msg)
            subs = [s for s in t.subscriptions if s.wants(msg)]
        for sub in subs:
            self._pushes.put((sub, msg))
        return msg

    def messages(self, topic: str | None = None) -> list[PublishedMessage]:
        with self._lock:
            if topic is not None:
                return list(self._topics[topic].messages) if topic in self._topics else []
            return [m for t in self._topics.values() for m in t.messages]

    def log_path(self, topic: str) -> Path | None:
        return self.log_dir / f"{topic}.jsonl" if self.log_dir is not None else None

    def _append_log(self, msg: PublishedMessage) -> None:
        path = self.log_path(msg.topic)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(msg.published_at)), **asdict(msg)}
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")

    # --- push ---------------------------------------------------------------------------------------

    def _push_loop(self) -> None:
        while (item := self._pushes.get()) is not None and not self._closed.is_set():
            delivery = deliver(*item, sleep=self._closed.wait)  # a close cuts the backoff short
            with self._lock:
                self.deliveries.append(delivery)

    def close(self) -> None:
        """Stop pushing; queued pushes are dropped (best effort, as documented), one in flight may finish."""
        self._closed.set()
        if self._pusher is not None:
            self._pushes.put(None)
            self._pusher.join(timeout=PUSH_TIMEOUT_S)
