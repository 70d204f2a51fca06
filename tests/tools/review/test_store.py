"""The review service through the real OSS and MNS SDKs against the stand-ins: the queue, the save in place,
the claim that lets exactly one save of a version win, a changed image, the result-reviewed message."""

from __future__ import annotations

import datetime
import threading

import orjson
import pytest

from permit_ocr.layout import META_ETAG, META_PENDING, REVIEWS_PREFIX
from permit_ocr.sinks import existing_outcome
from permit_ocr.storage import ObjectHead
from permit_ocr_local.tools.review import rules
from permit_ocr_local.tools.review import store as store_module
from permit_ocr_local.tools.review.store import Refused, Saved
from permit_ocr_local.tools.schemas import validate_document
from support import invoke, permit_image

from .conftest import NUMBER_FIXED, SPAN_FIXED, SPAN_READ, Seeded


def _approve(seeded: Seeded, name: str, **corrections: str) -> Saved:
    """What one reviewer does: open the result, approve it with ``corrections``."""
    store = seeded.store()
    item = store.load(seeded.result_key(name))
    assert item is not None
    return store.save(item.result_key, item.result_etag, "R", {**rules.fields_of(item.doc), **corrections})


def _check(doc: dict[str, object], code: str) -> object:
    return next(c["passed"] for c in doc["checks"] if c["code"] == code)  # type: ignore[attr-defined,index]


def test_queue_lists_only_flagged_results_oldest_first(seeded: Seeded) -> None:
    entries = seeded.store().queue()
    assert [e.result_key for e in entries] == [seeded.result_key("span"), seeded.result_key("number")]
    assert "validPeriod.span" in entries[0].reasons
    assert "number.format" in entries[1].reasons


def test_queue_walks_every_listing_page(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "LIST_PAGE", 1)  # one key per ListObjectsV2 page: images, results, all
    entries = seeded.store().queue()
    assert [e.result_key for e in entries] == [seeded.result_key("span"), seeded.result_key("number")]


def test_queue_counts_and_filters_by_failed_check(seeded: Seeded) -> None:
    entries = seeded.store().queue()
    counts = rules.reason_counts(entries)
    assert counts["validPeriod.span"] == 1 and counts["number.format"] == 1
    assert [e.result_key for e in rules.ordered(entries, "number.format")] == [seeded.result_key("number")]


def test_correction_is_saved_in_place_with_review_block_and_recomputed_checks(seeded: Seeded) -> None:
    store = seeded.store()
    item = store.load(seeded.result_key("span"))
    assert item is not None and item.image_state == "current" and item.image_url
    fields = {**rules.fields_of(item.doc), "validPeriod": SPAN_FIXED}
    saved = store.save(item.result_key, item.result_etag, "Reviewer Chen", fields)

    doc = seeded.result("span")
    assert doc["needsReview"] is False and doc["reviewReasons"] == []
    assert doc["data"]["data"]["validPeriod"] == SPAN_FIXED
    assert _check(doc, "validPeriod.span") is True
    assert doc["normalized"]["validTo"] == SPAN_FIXED[11:].replace(".", "-")
    assert doc["review"]["reviewer"] == "Reviewer Chen"
    assert doc["review"]["changes"] == [{"field": "validPeriod", "before": SPAN_READ,
                                         "after": SPAN_FIXED}]
    assert "validPeriod.span" in doc["review"]["previousReasons"]
    assert doc["review"]["acceptedChecks"] == [] and saved.accepted == []
    assert validate_document(doc) == []


def test_saved_result_keeps_the_source_etag_so_the_function_sees_the_image_as_done(seeded: Seeded) -> None:
    _approve(seeded, "span")
    meta = seeded.bucket.head_meta(seeded.result_key("span"))
    up = seeded.uploads["span"]
    assert meta[META_ETAG] == up.etag.upper() and meta[META_PENDING] == ""
    assert existing_outcome(ObjectHead(None, None, meta), up.etag) == "done"
    billed = seeded.stack.ocr.service.stats["billed"]  # type: ignore[union-attr]
    assert invoke(seeded.app, up)["counts"] == {"duplicate": 1}  # a redelivered event pays nothing ...
    assert seeded.stack.ocr.service.stats["billed"] == billed  # type: ignore[union-attr]
    assert "review" in seeded.result("span")  # ... and does not overwrite the review


def test_approval_publishes_one_result_reviewed_message(seeded: Seeded) -> None:
    saved = _approve(seeded, "number", permitNumber=NUMBER_FIXED)
    messages = seeded.reviewed_messages()
    assert len(messages) == 1 and saved.message_id == messages[0].message_id
    body = orjson.loads(messages[0].body)
    assert body["review"]["changes"][0]["field"] == "permitNumber"
    assert body["needsReview"] is False and body["normalized"]["permitNumber"] == NUMBER_FIXED


def test_oss_only_sink_publishes_nothing(seeded: Seeded) -> None:
    seeded.env["SINKS"] = "oss"
    saved = _approve(seeded, "span")
    assert saved.message_id is None and seeded.reviewed_messages() == []


def test_a_second_save_of_the_version_shown_is_refused(seeded: Seeded) -> None:
    first, second = seeded.store(), seeded.store()
    a = first.load(seeded.result_key("span"))
    b = second.load(seeded.result_key("span"))
    assert a is not None and b is not None and a.result_etag == b.result_etag
    first.save(a.result_key, a.result_etag, "Alice", {**rules.fields_of(a.doc), "validPeriod": SPAN_FIXED})
    with pytest.raises(Refused) as refused:
        second.save(b.result_key, b.result_etag, "Bob", {**rules.fields_of(b.doc), "nameCn": "错"})
    assert refused.value.reason == "taken" and "Alice saved this result first" in str(refused.value)
    doc = seeded.result("span")
    assert doc["review"]["reviewer"] == "Alice" and doc["data"]["data"]["nameCn"] != "错"
    assert len(seeded.reviewed_messages()) == 1


def test_simultaneous_saves_exactly_one_wins(seeded: Seeded) -> None:
    stores = [seeded.store() for _ in range(4)]
    items = [s.load(seeded.result_key("number")) for s in stores]
    start = threading.Barrier(len(stores))
    outcome: dict[str, str] = {}

    def save(i: int) -> None:
        item = items[i]
        assert item is not None
        start.wait()
        try:
            stores[i].save(item.result_key, item.result_etag, f"R{i}", {**rules.fields_of(item.doc),
                                                                        "nameEn": f"LIN,R{i}"})
            outcome[f"R{i}"] = "saved"
        except Refused as err:
            outcome[f"R{i}"] = err.reason

    threads = [threading.Thread(target=save, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [r for r, o in outcome.items() if o == "saved"]
    assert len(outcome) == 4 and len(winners) == 1, outcome
    assert seeded.result("number")["review"]["reviewer"] == winners[0]
    assert seeded.result("number")["data"]["data"]["nameEn"] == f"LIN,{winners[0]}"
    assert len(seeded.reviewed_messages()) == 1
    claims = list((seeded.bucket.root / REVIEWS_PREFIX).rglob("*"))
    assert len([c for c in claims if c.is_file()]) == 1


def test_result_of_a_replaced_image_is_not_reviewable(seeded: Seeded) -> None:
    store = seeded.store()
    item = store.load(seeded.result_key("span"))
    assert item is not None
    before = seeded.bucket.get(seeded.result_key("span"))
    seeded.bucket.put(seeded.uploads["span"].key, permit_image(size=(930, 626)))  # a newer version, no trigger
    again = store.load(seeded.result_key("span"))
    assert again is not None and again.image_state == "stale" and again.image_url is None
    with pytest.raises(Refused) as refused:
        store.save(item.result_key, item.result_etag, "R", rules.fields_of(item.doc))
    assert refused.value.reason == "stale" and "the function will produce a new result" in str(refused.value)
    assert seeded.bucket.get(seeded.result_key("span")) == before and seeded.reviewed_messages() == []


def test_a_form_missing_a_field_changes_nothing(seeded: Seeded) -> None:
    store = seeded.store()
    item = store.load(seeded.result_key("span"))
    assert item is not None
    partial = {f: v for f, v in rules.fields_of(item.doc).items() if f != "nameEn"}
    with pytest.raises(rules.BadInput, match="nameEn"):
        store.save(item.result_key, item.result_etag, "R", partial)
    assert seeded.result("span")["needsReview"] is True
    assert not (seeded.bucket.root / REVIEWS_PREFIX).exists()


def test_a_reviewed_result_leaves_the_queue(seeded: Seeded) -> None:
    _approve(seeded, "span")
    assert [e.result_key for e in seeded.store().queue()] == [seeded.result_key("number")]


def test_a_failed_publish_keeps_the_saved_review_with_its_message_owed(seeded: Seeded) -> None:
    seeded.env["MNS_TOPIC"] = "no-such-topic"
    saved = _approve(seeded, "span")
    assert saved.publish_error and saved.message_id is None
    assert seeded.result("span")["review"]["reviewer"] == "R"
    assert seeded.bucket.head_meta(seeded.result_key("span"))[META_PENDING] == "mns"


class _ProcessDied(BaseException):
    """A reviewer's process ending between its claim and its write (Ctrl-C, a kill, a lost laptop)."""


def test_a_claim_whose_reviewer_died_before_writing_is_taken_over_once_it_is_abandoned(
        seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    t0 = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC)
    dying = seeded.store(now=lambda: t0)
    item = dying.load(seeded.result_key("number"))
    assert item is not None
    fields = {**rules.fields_of(item.doc), "permitNumber": NUMBER_FIXED}

    def die(*_: object, **__: object) -> None:
        raise _ProcessDied

    monkeypatch.setattr(dying, "_write", die)
    with pytest.raises(_ProcessDied):
        dying.save(item.result_key, item.result_etag, "Gone", fields)
    assert seeded.result("number")["needsReview"] is True  # nothing written, the claim left behind

    soon = seeded.store(now=lambda: t0 + datetime.timedelta(minutes=1))  # the holder may still be writing
    with pytest.raises(Refused) as refused:
        soon.save(item.result_key, item.result_etag, "Early", fields)
    assert refused.value.reason == "taken" and seeded.result("number")["needsReview"] is True

    late = seeded.store(now=lambda: t0 + datetime.timedelta(seconds=store_module.CLAIM_ABANDONED_S + 1))
    saved = late.save(item.result_key, item.result_etag, "Later", fields)
    doc = seeded.result("number")
    assert saved.message_id and doc["review"]["reviewer"] == "Later" and doc["needsReview"] is False
    assert len(seeded.reviewed_messages()) == 1
    with pytest.raises(Refused):  # the taken-over version is done: a third save of it is refused
        late.save(item.result_key, item.result_etag, "Third", fields)
