"""ledger: the claim on one image version (the chain of create-only marker objects) that lets exactly one
attempt pay for OCR. Ledger.begin() against the OSS stand-in through the real SDK, with a controlled clock:
a fresh version, a live / expired / released / unreadable claim, a stored outcome, a lost PUT answer."""

from __future__ import annotations

import threading
from collections.abc import Callable

import alibabacloud_oss_v2 as oss
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from permit_ocr.config import Config
from permit_ocr.errors import StorageError
from permit_ocr.layout import (
    JSON_TYPE,
    KIND_ERROR,
    KIND_ERROR_RETRYING,
    KIND_MARKER,
    KIND_RESULT,
    META_ETAG,
    META_KIND,
    META_PENDING,
    META_REQUEST,
    Outputs,
    marker_key,
    outputs_for,
)
from permit_ocr.ledger import (
    CLOCK_SKEW_S,
    MAX_GENERATIONS,
    RELEASED,
    RUNNING,
    SUPERSEDED,
    Defer,
    Done,
    Holder,
    Ledger,
    Ticket,
    marker_body,
    parse_holder,
    settles,
)
from permit_ocr.sinks import StoredOutcome
from permit_ocr.storage import Storage
from permit_ocr_local.fcruntime.stack import LocalStack
from permit_ocr_local.standins.faults import FaultPlan
from permit_ocr_local.standins.http import Request, Response
from support import Bucket

KEY, ETAG = "uploads/a.png", "0123456789ABCDEF0123456789ABCDEF"
T0 = 10_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(storage: Storage, clock: Clock) -> Ledger:
    return Ledger(storage, clock)


@pytest.fixture
def outputs(cfg: Config, bucket: Bucket) -> Outputs:
    return outputs_for(cfg, bucket.name, KEY)


def begin(ledger: Ledger, outputs: Outputs, request_id: str, *, ttl_s: float = 60, replay: bool = False,
          fresh: bool = True) -> object:
    return ledger.begin(outputs, outputs.bucket, KEY, ETAG, request_id, expires_at=ledger.clock() + ttl_s,
                        fresh=fresh, replay=replay)


def marker(bucket: Bucket, generation: int) -> dict[str, object]:
    return dict(orjson.loads(bucket.get(marker_key(bucket.name, KEY, ETAG, generation))))


def store_outcome(storage: Storage, bucket: Bucket, key: str, kind: str, *, etag: str = ETAG, pending: bool = False,
                  request_id: str = "writer") -> None:
    storage.put(bucket.name, key, b"{}", JSON_TYPE, {META_ETAG: etag, META_KIND: kind,
                                                     META_PENDING: "mns" if pending else "", META_REQUEST: request_id})


# -- pure rules -------------------------------------------------------------------------------------------------


@given(token=st.text(min_size=1, max_size=20), request_id=st.text(max_size=20),
       expires=st.floats(0, 1e10, allow_nan=False), state=st.sampled_from([RUNNING, RELEASED]))
def test_a_marker_body_names_its_holder_back(token: str, request_id: str, expires: float, state: str) -> None:
    holder = Holder(token, request_id, expires, state)
    assert parse_holder(marker_body(ETAG, holder, 1.0)) == holder


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'{"token": "t"}', b'{"token":"t","requestId":"r",'
                                 b'"expiresAt":"soon","state":"running"}'])
def test_an_unreadable_marker_names_no_holder(raw: bytes) -> None:
    assert parse_holder(raw) is None


def test_a_holder_is_live_only_while_running_and_before_its_deadline_and_the_clock_skew() -> None:
    assert Holder("t", "r", T0 + 1, RUNNING).live(T0)
    assert Holder("t", "r", T0, RUNNING).live(T0)  # another instance's clock may read a little behind ours
    assert not Holder("t", "r", T0, RUNNING).live(T0 + CLOCK_SKEW_S)
    assert not Holder("t", "r", T0 + 1, RELEASED).live(T0)
    assert not Holder("t", "r", T0 + 1, SUPERSEDED).live(T0)


@pytest.mark.parametrize(("kind", "writer", "replay", "settled"), [
    (KIND_RESULT, "a", False, True),
    (KIND_RESULT, "a", True, True),  # a replay never pays again for a stored result
    (KIND_ERROR, "a", False, True),
    (KIND_ERROR, "a", True, False),  # the operator asks again about a final error ...
    (KIND_ERROR, "me", True, True),  # ... once: FC retrying the replay event finds its own record
    (KIND_ERROR_RETRYING, "a", False, False),  # a transient record never ends the work
])
def test_which_stored_outcome_ends_the_work(kind: str, writer: str, replay: bool, settled: bool) -> None:
    found = StoredOutcome("k.json", kind, pending=False, request_id=writer)
    assert settles(found, "me", replay) is settled
    assert settles(None, "me", replay) is False


# -- begin against the OSS stand-in ----------------------------------------------------------------------------


def test_the_first_attempt_on_a_version_gets_the_ticket_in_one_create_only_put(
        ledger: Ledger, outputs: Outputs, bucket: Bucket) -> None:
    ticket = begin(ledger, outputs, "req-1", ttl_s=55)
    assert isinstance(ticket, Ticket)
    assert ticket.key == marker_key(bucket.name, KEY, ETAG, 0)
    body = marker(bucket, 0)
    assert (body["etag"], body["requestId"], body["state"], body["expiresAt"]) == (ETAG, "req-1", RUNNING, T0 + 55)
    assert body["token"] == ticket.holder.token
    assert bucket.head_meta(ticket.key) == {META_ETAG: ETAG, META_KIND: KIND_MARKER}


def test_a_live_claim_of_another_attempt_defers_even_for_the_same_request(ledger: Ledger, outputs: Outputs,
                                                                           clock: Clock) -> None:
    assert isinstance(begin(ledger, outputs, "req-1"), Ticket)
    clock.now += 30
    assert isinstance(begin(ledger, outputs, "req-2"), Defer)  # a duplicate delivery
    assert isinstance(begin(ledger, outputs, "req-1"), Defer)  # FC's retry while the first attempt may run


def test_an_expired_claim_is_taken_over_with_the_next_generation(ledger: Ledger, outputs: Outputs, clock: Clock,
                                                                 bucket: Bucket) -> None:
    assert isinstance(begin(ledger, outputs, "req-1", ttl_s=60), Ticket)
    clock.now += 60 + CLOCK_SKEW_S + 0.1  # the holder died without a word
    taken = begin(ledger, outputs, "req-2")
    assert isinstance(taken, Ticket)
    assert taken.key == marker_key(bucket.name, KEY, ETAG, 1)
    assert marker(bucket, 0)["requestId"] == "req-1"  # the dead holder's marker stays as it was


def test_a_released_claim_is_taken_over_at_once(ledger: Ledger, outputs: Outputs, bucket: Bucket) -> None:
    first = begin(ledger, outputs, "req-1")
    assert isinstance(first, Ticket)
    first.release()
    assert marker(bucket, 0)["state"] == RELEASED
    taken = begin(ledger, outputs, "req-2")
    assert isinstance(taken, Ticket) and taken.key.endswith(".1")


def test_takeovers_walk_the_chain_to_the_first_free_generation(ledger: Ledger, outputs: Outputs,
                                                              bucket: Bucket) -> None:
    for generation in range(3):
        t = begin(ledger, outputs, f"req-{generation}")
        assert isinstance(t, Ticket) and t.key.endswith(f".{generation}")
        t.release()


def test_an_unreadable_marker_protects_nothing(ledger: Ledger, outputs: Outputs, storage: Storage,
                                               bucket: Bucket) -> None:
    storage.put(bucket.name, marker_key(bucket.name, KEY, ETAG, 0), b"garbage", JSON_TYPE, {})
    taken = begin(ledger, outputs, "req-1")
    assert isinstance(taken, Ticket) and taken.key.endswith(".1")


@pytest.mark.parametrize("kind", [KIND_RESULT, KIND_ERROR])
def test_a_stored_final_outcome_answers_done_while_the_claim_is_still_live(
        ledger: Ledger, outputs: Outputs, storage: Storage, bucket: Bucket, kind: str) -> None:
    assert isinstance(begin(ledger, outputs, "req-1"), Ticket)
    key = outputs.result_key if kind == KIND_RESULT else outputs.error_key
    store_outcome(storage, bucket, key, kind, request_id="req-1")
    done = begin(ledger, outputs, "req-2")
    assert isinstance(done, Done)
    assert done.outcome == StoredOutcome(key, kind, pending=False, request_id="req-1")


def test_an_owed_message_is_republished_only_by_a_claim_holder(ledger: Ledger, outputs: Outputs,
                                                                storage: Storage, bucket: Bucket) -> None:
    first = begin(ledger, outputs, "req-1")
    assert isinstance(first, Ticket)
    store_outcome(storage, bucket, outputs.result_key, KIND_RESULT, pending=True)
    assert isinstance(begin(ledger, outputs, "req-2"), Defer)  # the holder may be publishing right now
    first.release()  # its publish failed
    again = begin(ledger, outputs, "req-1")
    assert isinstance(again, Ticket) and again.owed is not None and again.owed.pending
    assert again.key.endswith(".1")


def test_an_outcome_of_another_version_is_not_this_versions(ledger: Ledger, outputs: Outputs, storage: Storage,
                                                            bucket: Bucket) -> None:
    begin(ledger, outputs, "req-1")
    store_outcome(storage, bucket, outputs.result_key, KIND_RESULT, etag="FFFF" + ETAG[4:])
    assert isinstance(begin(ledger, outputs, "req-2"), Defer)


def test_a_transient_record_with_a_released_claim_lets_the_next_delivery_pay(
        ledger: Ledger, outputs: Outputs, storage: Storage, bucket: Bucket) -> None:
    first = begin(ledger, outputs, "req-1")
    assert isinstance(first, Ticket)
    store_outcome(storage, bucket, outputs.error_key, KIND_ERROR_RETRYING)
    first.release()
    assert isinstance(begin(ledger, outputs, "req-1"), Ticket)  # FC's retry of the same request


def test_a_replay_asks_again_about_a_final_error_once(ledger: Ledger, outputs: Outputs, storage: Storage,
                                                      bucket: Bucket, clock: Clock) -> None:
    first = begin(ledger, outputs, "req-1")
    assert isinstance(first, Ticket)
    store_outcome(storage, bucket, outputs.error_key, KIND_ERROR, request_id="req-1")
    assert isinstance(begin(ledger, outputs, "req-2"), Done)  # an ordinary redelivery: settled
    clock.now += 120
    replay = begin(ledger, outputs, "replay-1", replay=True)
    assert isinstance(replay, Ticket) and replay.key.endswith(".1")
    store_outcome(storage, bucket, outputs.error_key, KIND_ERROR, request_id="replay-1")
    assert isinstance(begin(ledger, outputs, "replay-1", replay=True), Done)  # FC retrying the replay event


def test_a_marker_put_whose_answer_was_lost_is_recognised_as_ours_by_its_token(
        ledger: Ledger, outputs: Outputs, bucket: Bucket, stack: LocalStack,
        lose_oss_answers: Callable[..., None]) -> None:
    mkey = marker_key(bucket.name, KEY, ETAG, 0)

    def marker_put(request: Request) -> bool:
        return request.method == "PUT" and request.path.endswith(mkey)

    lose_oss_answers(marker_put, 1)  # the marker is created; the client sees a 503 and sends the PUT again: 409
    ticket = begin(ledger, outputs, "req-1")
    assert isinstance(ticket, Ticket)
    assert ticket.key == mkey and marker(bucket, 0)["token"] == ticket.holder.token
    assert not bucket.exists(marker_key(bucket.name, KEY, ETAG, 1))
    assert stack.oss is not None
    stats = stack.oss.service.stats
    assert (stats["injected:503"], stats["error:FileAlreadyExists"]) == (1, 1)  # the answer was lost, then 409


def test_of_contenders_for_a_free_version_exactly_one_gets_the_ticket(storage: Storage, outputs: Outputs) -> None:
    ledger = Ledger(storage, Clock())
    answers: list[object] = []
    start = threading.Barrier(6)

    def contend(i: int) -> None:
        start.wait()
        answers.append(begin(ledger, outputs, f"req-{i}"))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(a, Ticket) for a in answers) == 1
    assert sum(isinstance(a, Defer) for a in answers) == 5


def test_when_oss_cannot_tell_begin_raises_instead_of_guessing(ledger: Ledger, outputs: Outputs,
                                                               oss_faults: FaultPlan, no_oss_pauses: None) -> None:
    oss_faults.set("oss", server_error=1.0)
    with pytest.raises(StorageError) as info:
        begin(ledger, outputs, "req-1")
    assert info.value.transient


def test_release_is_best_effort_and_happens_once(ledger: Ledger, outputs: Outputs, bucket: Bucket,
                                                 oss_faults: FaultPlan, no_oss_pauses: None) -> None:
    ticket = begin(ledger, outputs, "req-1")
    assert isinstance(ticket, Ticket)
    oss_faults.set("oss", server_error=1.0)
    ticket.release()  # OSS is down: the running marker still expires at its deadline; nothing raises
    oss_faults.rates.clear()
    ticket.release()
    assert marker(bucket, 0)["state"] == RUNNING  # released already counted: no second write


def test_a_marker_expired_between_the_refused_put_and_its_read_protects_nothing(
        ledger: Ledger, outputs: Outputs, bucket: Bucket, oss_wire: Callable[..., None]) -> None:
    assert isinstance(begin(ledger, outputs, "req-1"), Ticket)
    mkey = marker_key(bucket.name, KEY, ETAG, 0)

    def expire_after_refusal(request: Request, answer: Response) -> Response:
        if request.method == "PUT" and request.path.endswith(mkey) and answer.status == 409:
            bucket.client.delete_object(oss.DeleteObjectRequest(bucket=bucket.name, key=mkey))  # the lifecycle rule
        return answer

    oss_wire(expire_after_refusal)
    taken = begin(ledger, outputs, "req-2")
    assert isinstance(taken, Ticket) and taken.key.endswith(".1")


def test_an_exhausted_marker_chain_is_an_error_not_a_payment(ledger: Ledger, outputs: Outputs, storage: Storage,
                                                             bucket: Bucket) -> None:
    dead = Holder("t", "r", T0 - 1, RELEASED)
    for generation in range(MAX_GENERATIONS):
        storage.put(bucket.name, marker_key(bucket.name, KEY, ETAG, generation), marker_body(ETAG, dead, T0 - 2),
                    JSON_TYPE, {})
    with pytest.raises(StorageError) as info:
        begin(ledger, outputs, "req-1")
    assert (info.value.code, info.value.transient) == ("TooManyGenerations", False)


# -- the outcome is the done record; markers are only locks -------------------------------------------------------


def test_a_version_whose_marker_is_gone_but_whose_outcome_is_stored_is_done(
        ledger: Ledger, outputs: Outputs, storage: Storage, bucket: Bucket) -> None:
    # the 30-day lifecycle rule (or a hand) deleted the marker; the result stays: no new gen 0, nothing to pay
    store_outcome(storage, bucket, outputs.result_key, KIND_RESULT, request_id="long-ago")
    done = begin(ledger, outputs, "req-late", fresh=False)
    assert isinstance(done, Done) and done.outcome.key == outputs.result_key
    assert not bucket.exists(marker_key(bucket.name, KEY, ETAG, 0))


def test_a_fresh_version_is_claimed_in_one_request_without_looking_for_outcomes(
        ledger: Ledger, outputs: Outputs, stack: LocalStack) -> None:
    assert stack.oss is not None
    before = stack.oss.service.stats["HeadObject"]
    assert isinstance(begin(ledger, outputs, "req-1", fresh=True), Ticket)
    assert stack.oss.service.stats["HeadObject"] == before


def test_a_taker_over_is_told_to_look_at_the_image_again(ledger: Ledger, outputs: Outputs) -> None:
    first = begin(ledger, outputs, "req-1")
    assert isinstance(first, Ticket) and not first.takeover
    first.release(SUPERSEDED)  # it paid, then found a newer version current
    second = begin(ledger, outputs, "req-2")
    assert isinstance(second, Ticket) and second.takeover


def test_a_claim_is_extended_only_by_its_live_holder(ledger: Ledger, outputs: Outputs, bucket: Bucket,
                                                     clock: Clock) -> None:
    ticket = begin(ledger, outputs, "req-1", ttl_s=20)
    assert isinstance(ticket, Ticket)
    assert ticket.extend(T0 + 50) and marker(bucket, 0)["expiresAt"] == T0 + 50
    clock.now = T0 + 49  # one second left: too little to rewrite the marker safely
    assert not ticket.extend(T0 + 90)
    assert marker(bucket, 0)["expiresAt"] == T0 + 50


# -- release_held: what a local process that is interrupted gives back ---------------------------------------------


def test_an_interrupted_process_releases_the_claims_its_attempts_hold_so_the_next_run_takes_over_at_once(
        storage: Storage, outputs: Outputs, clock: Clock, bucket: Bucket) -> None:
    interrupted = Ledger(storage, clock)
    held = begin(interrupted, outputs, "req-1")  # an attempt still running: its frame holds the ticket
    assert isinstance(held, Ticket)
    assert isinstance(begin(Ledger(storage, clock), outputs, "req-2"), Defer)  # before: the next run must wait
    assert interrupted.release_held() == 1
    assert marker(bucket, 0)["state"] == RELEASED
    assert interrupted.release_held() == 0  # once
    taken = begin(Ledger(storage, clock), outputs, "req-3")  # the next run, without waiting for the expiry
    assert isinstance(taken, Ticket) and taken.key == marker_key(bucket.name, KEY, ETAG, 1)


def test_a_claim_whose_attempt_ended_is_no_longer_held_by_the_process(storage: Storage, outputs: Outputs,
                                                                       clock: Clock, bucket: Bucket) -> None:
    import gc

    ledger = Ledger(storage, clock)
    assert isinstance(begin(ledger, outputs, "req-1"), Ticket)  # the attempt ended: nothing refers to its ticket
    gc.collect()
    assert ledger.release_held() == 0
    assert marker(bucket, 0)["state"] == RUNNING  # its marker stays as the attempt left it


def test_a_replay_takes_over_at_once_from_a_live_holder_that_stored_its_verdict(
        ledger: Ledger, outputs: Outputs, storage: Storage, bucket: Bucket) -> None:
    first = begin(ledger, outputs, "req-1")
    assert isinstance(first, Ticket)
    store_outcome(storage, bucket, outputs.error_key, KIND_ERROR, request_id="req-1")  # the verdict, settled
    assert isinstance(begin(ledger, outputs, "req-2"), Done)  # an ordinary redelivery: done
    replay = begin(ledger, outputs, "replay-1", replay=True)  # the operator asks again: no wait for the claim
    assert isinstance(replay, Ticket) and replay.key.endswith(".1")


def test_a_replay_still_waits_for_a_live_holder_that_has_not_finished(
        ledger: Ledger, outputs: Outputs, storage: Storage, bucket: Bucket) -> None:
    assert isinstance(begin(ledger, outputs, "req-1"), Ticket)
    store_outcome(storage, bucket, outputs.error_key, KIND_ERROR, request_id="req-0")  # an older attempt's verdict
    assert isinstance(begin(ledger, outputs, "replay-1", replay=True), Defer)
