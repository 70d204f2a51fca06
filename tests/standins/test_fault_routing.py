"""Fault rules on the wire: each stand-in's routing says what a request is, and a rule that hits it is
answered in that service's own error shape (what the real SDK raises), late, dropped, or after the service
acted. Real SDKs over HTTP on 127.0.0.1 against one LocalStack and one FC stand-in."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest
from alibabacloud_fc20230330 import models as fc_models
from alibabacloud_fc20230330.client import Client as FcClient
from alibabacloud_ocr_api20210707 import models as ocr_models
from alibabacloud_ocr_api20210707.client import Client as OcrClient
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions
from mns.account import Account
from mns.mns_exception import MNSServerException
from mns.topic import TopicMessage
from PIL import Image
from Tea.exceptions import TeaException

from permit_ocr_local.fcruntime.stack import DEFAULT_BUCKET, LocalStack, StackOptions
from permit_ocr_local.standins.faults import OPERATIONS, FaultPlan, Target
from permit_ocr_local.standins.fc import FcServer, start_fc
from permit_ocr_local.standins.fc.rules import fault_target as fc_target
from permit_ocr_local.standins.fc.state import Function
from permit_ocr_local.standins.http import Request
from permit_ocr_local.standins.mns.server import fault_target as mns_target
from permit_ocr_local.standins.ocr.rules import fault_target as ocr_target
from permit_ocr_local.standins.ocr.truthmark import embed_truth
from permit_ocr_local.standins.oss.rules import fault_target as oss_target

TRUTH = {"permitType": "港澳居民来往内地通行证", "nameCn": "何郑", "nameEn": "HE,CHENG", "birthDate": "2000.01.01",
         "sex": "男", "validPeriod": "2014.04.10-2019.04.09", "issueAuthority": "公安部出入境管理局",
         "issuePlace": "", "permitNumber": "H10387877", "issueCount": "01"}


# -- routing: what each stand-in says a request is --------------------------------------------------------------
def request(method: str, path: str, query: str = "", headers: tuple[tuple[str, str], ...] = ()) -> Request:
    return Request(method, path, query, headers, b"")


def test_oss_routing_names_each_operation_the_rules_know_and_only_those() -> None:
    seen = set()
    for method, path, query in product(("GET", "PUT", "HEAD", "DELETE", "POST"), ("/b", "/b/k.jpg"),
                                       ("", "objectMeta", "versioning", "list-type=2&prefix=up%2F", "acl")):
        op = oss_target(request(method, path, query)).operation
        assert op in OPERATIONS["oss"] | {""}, (method, path, query, op)
        seen.add(op)
    assert seen - {""} == OPERATIONS["oss"]
    assert oss_target(request("GET", "/b/up%20loads/a%2Bb.jpg")) == Target("GetObject", "up loads/a+b.jpg", "b")
    assert oss_target(request("GET", "/b", "list-type=2&prefix=up%2F")) == Target("ListObjectsV2", "up/", "b")
    assert oss_target(request("POST", "/b/k.jpg", "restore")).operation == ""  # not served: only "*" matches


def test_ocr_mns_and_fc_routing_name_their_operations_and_keys() -> None:
    ocr = request("POST", "/", "Url=http%3A%2F%2F127.0.0.1%3A9%2Fbucket%2Fup%2F%E5%BC%A0.jpg%3FExpires%3D1",
                  (("x-acs-action", "RecognizeExitEntryPermitToMainland"),))
    assert ocr_target(ocr) == Target("RecognizeExitEntryPermitToMainland", "up/张.jpg")
    assert ocr_target(request("POST", "/", "", (("x-acs-action", "RecognizeIdcard"),))) == Target("")
    assert mns_target(request("POST", "/topics/permit-ocr-results/messages")) == \
        Target("PublishMessage", "permit-ocr-results")
    assert mns_target(request("GET", "/topics/t/messages")) == Target("")
    assert fc_target(request("POST", "/2023-03-30/functions/permit-ocr/invocations")) == \
        Target("InvokeFunction", "permit-ocr")
    assert fc_target(request("GET", "/2023-03-30/functions/permit-ocr")) == Target("GetFunction", "permit-ocr")
    assert fc_target(request("PUT", "/nowhere")) == Target("")
    named = {ocr_target(ocr).operation, mns_target(request("POST", "/topics/t/messages")).operation}
    assert named == OPERATIONS["ocr"] | OPERATIONS["mns"]


# -- on the wire ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(StackOptions(root=tmp_path_factory.mktemp("faults"))) as s:  # stopping one costs 0.5 s
        yield s


@pytest.fixture
def stack(shared_stack: LocalStack) -> LocalStack:
    shared_stack.faults.clear_rules()
    return shared_stack


def oss_client(stack: LocalStack) -> oss.Client:
    e = stack.env()
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        e["ALIBABA_CLOUD_ACCESS_KEY_ID"], e["ALIBABA_CLOUD_ACCESS_KEY_SECRET"], e["ALIBABA_CLOUD_SECURITY_TOKEN"])
    cfg.region, cfg.endpoint, cfg.retry_max_attempts = e["OSS_REGION"], e["OSS_ENDPOINT"], 1
    cfg.readwrite_timeout = 5
    return oss.Client(cfg)


def oss_error(call: Any) -> Any:
    with pytest.raises(oss.exceptions.OperationError) as exc:
        call()
    return exc.value.unwrap()


def put(c: oss.Client, key: str, body: bytes = b"image") -> Any:
    return c.put_object(oss.PutObjectRequest(bucket=DEFAULT_BUCKET, key=key, body=body))


def get(c: oss.Client, key: str) -> bytes:
    return bytes(c.get_object(oss.GetObjectRequest(bucket=DEFAULT_BUCKET, key=key)).body.content)


def test_an_oss_rule_answers_in_oss_xml_for_its_prefix_only_and_oss_never_sees_the_request(
        stack: LocalStack) -> None:
    c = oss_client(stack)
    put(c, "private/a.jpg")
    put(c, "public/a.jpg")
    rule = stack.faults.add_rule({"service": "oss", "operation": ["GetObject", "HeadObject"], "key": "private/*",
                                  "status": 403, "code": "AccessDenied"})
    assert stack.oss is not None
    before = stack.oss.service.stats["GetObject"]
    err = oss_error(lambda: get(c, "private/a.jpg"))
    assert (err.status_code, err.code, err.ec) == (403, "AccessDenied", "0003-00000001")
    head = oss_error(lambda: c.head_object(oss.HeadObjectRequest(bucket=DEFAULT_BUCKET, key="private/a.jpg")))
    assert (head.status_code, head.code) == (403, "AccessDenied")  # HEAD: the XML rides in x-oss-err
    assert get(c, "public/a.jpg") == b"image"
    assert stack.faults.hits(rule) == 2 and stack.oss.service.stats["GetObject"] == before + 1


def test_a_rule_at_the_answer_lets_oss_act_then_loses_its_answer(stack: LocalStack) -> None:
    c = oss_client(stack)
    stack.faults.add_rule({"service": "oss", "operation": "PutObject", "key": "*.json", "status": 503,
                           "at": "answer", "times": 1})
    err = oss_error(lambda: put(c, "r/a.jpg.json", b"{}"))
    assert (err.status_code, err.code) == (503, "ServiceUnavailable")
    assert get(c, "r/a.jpg.json") == b"{}"  # the write happened; only its answer was lost


def test_a_dropped_connection_and_a_late_answer(stack: LocalStack) -> None:
    c = oss_client(stack)
    put(c, "slow/a.jpg")
    stack.faults.add_rule({"service": "oss", "operation": "GetObject", "key": "drop/*", "drop": True})
    stack.faults.add_rule({"service": "oss", "operation": "GetObject", "key": "slow/*", "delay_s": 0.4})
    with pytest.raises(oss.exceptions.OperationError) as dropped:
        get(c, "drop/a.jpg")
    assert not isinstance(dropped.value.unwrap(), oss.exceptions.ServiceError)  # no answer at all
    started = time.monotonic()
    assert get(c, "slow/a.jpg") == b"image"  # a delay alone answers as the service would, late
    assert time.monotonic() - started >= 0.4


def test_an_ocr_rule_answers_in_the_acs_json_shape_and_nothing_is_billed(stack: LocalStack) -> None:
    e = stack.env()
    client = OcrClient(Config(endpoint=e["OCR_ENDPOINT"], protocol="http",
                              access_key_id=e["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                              access_key_secret=e["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
                              security_token=e["ALIBABA_CLOUD_SECURITY_TOKEN"]))
    rule = stack.faults.add_rule({"service": "ocr", "status": 429, "code": "Throttling.User", "times": 1})
    req = ocr_models.RecognizeExitEntryPermitToMainlandRequest(body=io.BytesIO(permit_png()))
    with pytest.raises(TeaException) as exc:
        client.recognize_exit_entry_permit_to_mainland_with_options(req, RuntimeOptions())
    assert (exc.value.code, exc.value.statusCode) == ("Throttling.User", 429)
    assert stack.ocr is not None and stack.ocr.service.calls == []
    req = ocr_models.RecognizeExitEntryPermitToMainlandRequest(body=io.BytesIO(permit_png()))
    assert client.recognize_exit_entry_permit_to_mainland_with_options(req, RuntimeOptions()).status_code == 200
    assert stack.faults.hits(rule) == 1


def test_an_mns_rule_answers_in_mns_xml_for_its_topic_and_publishes_nothing(stack: LocalStack) -> None:
    e = stack.env()
    topic = Account(e["MNS_ENDPOINT"], e["ALIBABA_CLOUD_ACCESS_KEY_ID"], e["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
                    security_token=e["ALIBABA_CLOUD_SECURITY_TOKEN"]).get_topic(e["MNS_TOPIC"])
    other = stack.faults.add_rule({"service": "mns", "operation": "PublishMessage", "key": "other-topic",
                                   "status": 500})
    ours = stack.faults.add_rule({"service": "mns", "key": e["MNS_TOPIC"], "status": 503, "code": "ServiceUnavailable",
                           "message": "scripted brownout"})
    assert stack.mns is not None
    before = len(stack.mns.state.messages(e["MNS_TOPIC"]))
    with pytest.raises(MNSServerException) as exc:
        topic.publish_message(TopicMessage("body", "t"))
    assert (exc.value.type, exc.value.message) == ("ServiceUnavailable", "scripted brownout")
    assert len(stack.mns.state.messages(e["MNS_TOPIC"])) == before
    assert (stack.faults.hits(other), stack.faults.hits(ours)) == (0, 1)


@pytest.fixture
def fc_server(stack: LocalStack) -> Iterator[FcServer]:
    ran: list[bytes] = []
    fn = Function("permit-ocr", 60, 512, lambda event, rid: ran.append(event) or {"ok": True}, _NoQueue())
    server = start_fc(stack.keyring, [fn], faults=stack.faults)
    server.ran = ran  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


class _NoQueue:
    def submit(self, event: bytes, request_id: str | None = None) -> str:
        return request_id or ""

    def wait_idle(self, timeout_s: float) -> bool:
        return True

    def close(self) -> None:
        pass


def test_an_fc_rule_answers_in_fc_json_for_its_function_and_the_function_never_runs(
        stack: LocalStack, fc_server: FcServer) -> None:
    e = stack.env()
    client = FcClient(Config(access_key_id=e["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                             access_key_secret=e["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
                             security_token=e["ALIBABA_CLOUD_SECURITY_TOKEN"], endpoint=fc_server.host,
                             protocol="http", read_timeout=10_000, connect_timeout=5_000))
    stack.faults.add_rule({"service": "fc", "operation": "InvokeFunction", "key": "permit-ocr", "status": 429,
                           "code": "ResourceExhausted", "times": 1})

    def invoke() -> Any:
        return client.invoke_function_with_options(
            "permit-ocr", fc_models.InvokeFunctionRequest(body=io.BytesIO(b"{}")),
            fc_models.InvokeFunctionHeaders(x_fc_invocation_type="Sync"), RuntimeOptions())

    with pytest.raises(TeaException) as exc:
        invoke()
    assert (exc.value.code, exc.value.statusCode) == ("ResourceExhausted", 429)
    assert fc_server.ran == []  # type: ignore[attr-defined]
    assert invoke().status_code == 200 and len(fc_server.ran) == 1  # type: ignore[attr-defined]


def test_an_oss_brownout_starts_after_the_paid_call_and_ends_with_its_window(stack: LocalStack) -> None:
    """The worked example of docs/faults.md, with a window of 1 s instead of 12."""
    c = oss_client(stack)
    put(c, "uploads/a.png", permit_png())
    rule = stack.faults.add_rule({"service": "oss", "operation": "*", "status": 503, "for_s": 1,
                                  "start_on": {"service": "ocr", "operation": "RecognizeExitEntryPermitToMainland"}})
    assert get(c, "uploads/a.png")  # dormant until the paid call
    e = stack.env()
    url = c.presign(oss.GetObjectRequest(bucket=DEFAULT_BUCKET, key="uploads/a.png")).url
    ocr = OcrClient(Config(endpoint=e["OCR_ENDPOINT"], protocol="http", access_key_id=e["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                           access_key_secret=e["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
                           security_token=e["ALIBABA_CLOUD_SECURITY_TOKEN"]))
    answer = ocr.recognize_exit_entry_permit_to_mainland_with_options(
        ocr_models.RecognizeExitEntryPermitToMainlandRequest(url=url), RuntimeOptions())
    assert answer.status_code == 200  # OCR's own fetch of the image came before the window
    err = oss_error(lambda: put(c, "uploads/a.png.json", b"{}"))
    assert (err.status_code, err.code) == (503, "ServiceUnavailable")
    time.sleep(1.05)
    put(c, "uploads/a.png.json", b"{}")
    assert stack.faults.hits(rule) == 1


def test_the_stack_plan_is_shared_and_a_plan_passed_in_is_the_one_used(tmp_path: Path) -> None:
    plan = FaultPlan(seed=3)
    with LocalStack(StackOptions(root=tmp_path / "a", faults=plan)) as a:
        assert a.faults is plan
        assert a.oss is not None and a.ocr is not None and a.mns is not None
        assert a.oss.faults is plan and a.ocr.faults is plan and a.mns.faults is plan
    b = LocalStack(StackOptions(root=tmp_path / "b", faults=[{"service": "oss", "status": 503}]))
    assert [r.status for _, r, _ in b.faults.active_rules()] == [503]


def permit_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (928, 626), (235, 225, 210)).save(buf, "PNG")
    return embed_truth(buf.getvalue(), TRUTH)


def test_the_deployed_functions_fc_api_asks_the_stack_plan(tmp_path: Path) -> None:
    from permit_ocr_local.fcruntime.function import LocalFunction

    repo = Path(__file__).resolve().parents[2]
    with LocalFunction(repo / "s.yaml", tmp_path, stack_options={"faults": [
            {"service": "fc", "operation": "InvokeFunction", "status": 503}]}) as fn:
        assert fn.fc.faults is fn.stack.faults and fn.stack.faults.active_rules()
