"""The chaos run's invariants on hand-made end states (no stack, no run): each must flag what breaks the promise
and pass what keeps it, so a green table means something. Documents are minimal: the fields the checks read."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from permit_ocr.config import load_config
from permit_ocr.layout import META_ETAG, META_KIND, META_PENDING
from permit_ocr_local.standins.oss.state import OssState
from permit_ocr_local.tools.chaos import Item, Observed, Workload, check
from permit_ocr_local.tools.chaos.reviewers import REVIEWER
from permit_ocr_local.tools.chaos.scripts import Saves
from permit_ocr_local.tools.chaos.tap import Windows

BUCKET, KEY = "permit-ocr-demo", "uploads/a.png"
IMAGE = b"\x89PNG one version"
TRUTH = {"permitNumber": "H00000001", "birthDate": "2000.01.01"}


def result(number: str, etag: str, **extra: Any) -> dict[str, Any]:
    return {"type": "result", "source": {"bucket": BUCKET, "key": KEY, "etag": etag},
            "data": {"data": {"permitNumber": number, "birthDate": "2000.01.01"}}, **extra}


class World:
    """An end state: the bucket, what was published, what was billed."""

    def __init__(self, root: Path, sinks: str = "oss,mns") -> None:
        self.state = OssState(root)
        self.state.create_bucket(BUCKET)
        self.etag = self.state.put(BUCKET, KEY, IMAGE).etag
        self.sinks = sinks
        self.published: list[str] = []
        self.billed: Counter[str] = Counter({_sha(IMAGE): 1})
        self.windows = Windows()
        self.saves = Saves()
        self.item = Item("permit", KEY, [IMAGE], [TRUTH], etags=[self.etag], uploaded_at=[0.0])

    def store(self, doc: dict[str, Any], kind: str = "result", pending: bool = False) -> None:
        self.state.put(BUCKET, f"{KEY}.json", orjson.dumps(doc), user_meta={
            META_ETAG: self.etag, META_KIND: kind, META_PENDING: "mns" if pending else ""})

    def publish(self, doc: dict[str, Any]) -> None:
        self.published.append(orjson.dumps(doc).decode())

    def check(self) -> dict[str, int]:
        cfg = load_config({"SOURCE_BUCKETS": BUCKET, "SINKS": self.sinks, "MNS_ENDPOINT": "http://127.0.0.1:1",
                           "MNS_TOPIC": "t", "OCR_ENDPOINT": "127.0.0.1:1"})
        obs = Observed(
            workload=Workload([self.item], [], 1, {}), phases={"run": 1.0}, stats=Counter(), trigger_events=1,
            loop_keys=[], direct_events=Counter(), statuses=Counter(), unhandled=Counter(), answers={},
            log_lines=[], failure_messages=0, published=self.published, state=self.state, bucket=BUCKET, cfg=cfg,
            ocr_calls=[], billed=self.billed, injected=Counter(), upload_failures=[], sinks=self.sinks,
            layout="beside", crashes=[], windows=self.windows, saves=self.saves, destroyed=[], notes=Counter(),
            harness_errors=[], ending=[], valve_holds=0, permission_changes=0)
        return {v.label: v.count for v in check(obs).violations}


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


CONTENT = "result content of another version (stored or published)"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_kept_promise_passes(world: World) -> None:
    world.store(result("H00000001", world.etag))
    world.publish(result("H00000001", world.etag))
    assert world.check() == {}


def test_with_mns_alone_a_receipt_is_checked_against_what_was_published(tmp_path: Path) -> None:
    world = World(tmp_path, sinks="mns")
    world.store({"type": "receipt", "source": {"bucket": BUCKET, "key": KEY, "etag": world.etag}}, kind="receipt")
    world.publish(result("H00000001", world.etag))
    assert world.check() == {}  # the receipt holds no fields: what was published is the content
    world.publish(result("H99999999", world.etag))  # another version's fields under this version's name
    assert world.check() == {CONTENT: 1}


def test_a_receipt_with_nothing_published_is_an_outcome_never_delivered(tmp_path: Path) -> None:
    world = World(tmp_path, sinks="mns")
    world.store({"type": "receipt"}, kind="receipt")
    assert world.check() == {"outcome never published on MNS": 1}


def test_a_stored_result_of_another_version_and_a_pending_flag_are_violations(world: World) -> None:
    world.store(result("H99999999", world.etag), pending=True)
    world.publish(result("H00000001", world.etag))
    assert world.check() == {CONTENT: 1, "message still owed at the end (pending flag)": 1}


def test_a_transient_record_at_the_end_is_a_wrong_outcome(world: World) -> None:
    doc = {"type": "error", "error": {"code": "AccessDenied", "transient": True, "message": "denied"}}
    world.state.put(BUCKET, f"{KEY}.error.json", orjson.dumps(doc),
                    user_meta={META_ETAG: world.etag, META_KIND: "error-retrying"})
    found = world.check()
    assert found["wrong outcome (vs. the kind of upload; no transient record may stay)"] == 1


def test_paid_twice_is_allowed_only_by_a_window_that_happened_to_that_key(world: World) -> None:
    world.store(result("H00000001", world.etag))
    world.publish(result("H00000001", world.etag))
    world.billed[_sha(IMAGE)] = 2
    assert world.check() == {"paid above uploads outside the documented windows": 1}
    world.windows.add("d", "other-bucket", KEY)  # a window of another key explains nothing here
    assert world.check() == {"paid above uploads outside the documented windows": 1}
    world.windows.add("d", BUCKET, KEY)
    assert world.check() == {}


def test_a_landed_review_save_replaced_by_an_unreviewed_result_is_reported(world: World) -> None:
    reviewed = result("H00000001", world.etag, review={"reviewer": REVIEWER})
    world.saves.landed.append((BUCKET, KEY, world.etag, {"birthDate": "2000.01.01"}))
    world.store(result("H00000001", world.etag))  # the function's write, after the save
    world.publish(reviewed)
    world.publish(result("H00000001", world.etag))
    found = world.check()
    assert found == {"landed saves overwritten by the function (same version)": 1,
                     "unreviewed message published after the reviewed one": 1}
    world.store(reviewed)
    world.published.pop()
    assert world.check() == {}


def test_an_upload_with_no_outcome_is_lost(world: World) -> None:
    assert world.check() == {"lost (no result/error record for the current ETag)": 1}
