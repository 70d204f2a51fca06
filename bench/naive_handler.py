"""The reference point: an OSS-trigger -> OCR handler written the way the public samples are.

Deliberately naive, to give every `make bench` figure a ratio; never deploy it. What it does "wrong":
- builds the OSS and OCR clients on every call (no reuse across warm invocations);
- parses the event with json and reads only ``events[0]`` (other records of the event are dropped);
- reads the whole object, then hands the bytes to the OCR SDK as a BytesIO stream (the SDK reads streams
  1 KB at a time into a growing bytes object: quadratic, ocr-api.md §4);
- no precheck, no idempotency, no error record, no retry policy of its own.
It uses alibabacloud-oss-v2 (not oss2) only to stay offline with what is installed.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import alibabacloud_oss_v2 as oss
from alibabacloud_ocr_api20210707 import models as ocr_models
from alibabacloud_ocr_api20210707.client import Client as OcrClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util import models as util_models


def handler(event: bytes, context: Any) -> str:
    evt = json.loads(event)
    record = evt["events"][0]
    bucket = record["oss"]["bucket"]["name"]
    key = record["oss"]["object"]["key"]

    ak = os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"]
    sk = os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]
    token = os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN")

    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(ak, sk, token)
    cfg.region = os.environ.get("OSS_REGION", "cn-hangzhou")
    cfg.endpoint = os.environ.get("OSS_ENDPOINT")
    client = oss.Client(cfg)
    image = client.get_object(oss.GetObjectRequest(bucket=bucket, key=key)).body.read()

    ocr = OcrClient(open_api_models.Config(
        access_key_id=ak, access_key_secret=sk, security_token=token,
        endpoint=os.environ.get("OCR_ENDPOINT", "ocr-api.cn-hangzhou.aliyuncs.com"),
        protocol=os.environ.get("OCR_PROTOCOL", "https")))
    request = ocr_models.RecognizeExitEntryPermitToMainlandRequest(body=io.BytesIO(image))
    response = ocr.recognize_exit_entry_permit_to_mainland_with_options(request, util_models.RuntimeOptions())
    result = json.loads(response.body.data)

    out_key = key + ".json"
    client.put_object(oss.PutObjectRequest(bucket=bucket, key=out_key,
                                           body=json.dumps(result, ensure_ascii=False).encode("utf-8")))
    return json.dumps({"key": out_key})
