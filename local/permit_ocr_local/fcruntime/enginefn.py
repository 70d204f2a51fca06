"""The engine function on the local FC stand-in: the real handler (``permit_ocr_engine.handler``), invoked by
the main function through the FC SDK (InvokeFunction, Sync, signatures verified), as in the cloud.

Its recognizer is the embedded engine (``engine``: what `make run` shows), or ``truth``, which answers from the
truth a test image carries: deterministic and instant, for tests and the chaos run. A truth may say how the
engine should differ from the API under an ``"engine"`` key: other ``valueProb``s (a doubtful field, so a
cascade asks the API), other field values (a misread), an ``error`` code (a refusal) or a ``delay``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from permit_ocr_engine.handler import EngineFunction, Recognize, embedded
from permit_ocr_local.standins.faults import FaultPlan
from permit_ocr_local.standins.fc.server import FcServer
from permit_ocr_local.standins.keyring import Keyring
from permit_ocr_local.standins.ocr.backends import FIELDS, RecognitionError, build_data
from permit_ocr_local.standins.ocr.imageinfo import dimensions
from permit_ocr_local.standins.ocr.truthmark import read_truth

from .context import FcContext
from .deployment import Deployment, EngineDeployment
from .fcapi import start_fc

ENGINE_FUNCTION_NAME = "permit-ocr-engine"
RECOGNIZERS = ("engine", "truth")
# the embedded engine on a busy 2-core machine (its models preloaded) can take several times its FC time; a
# cascade's worst case (this + the OCR stand-in's 60 s) must still fit invoke's default 120 s timeout
LOCAL_ENGINE_TIMEOUT_MS = "30000"


def engine_view(truth: dict[str, Any]) -> dict[str, Any]:
    """What the engine reads where the API reads ``truth``: the truth with its ``engine`` overrides applied."""
    engine = truth.get("engine")
    theirs: dict[str, Any] = engine if isinstance(engine, dict) else {}
    view = {k: v for k, v in truth.items() if k != "engine"}
    fields = theirs.get("data")
    view.update({k: v for k, v in fields.items() if k in FIELDS} if isinstance(fields, dict) else {})
    if isinstance(theirs.get("valueProb"), dict):
        view["valueProb"] = {**(view.get("valueProb") or {}), **theirs["valueProb"]}
    for key in ("error", "delay"):
        view.pop(key, None)
        if key in theirs:
            view[key] = theirs[key]
    return view


def truth_engine() -> Recognize:
    def recognize(image: bytes, output_figure: bool) -> dict[str, Any]:
        truth = read_truth(image)
        if truth is None:
            raise RecognitionError("unmatchedImageType", "no permit found")
        view = engine_view(truth)
        if "delay" in view:
            time.sleep(min(5.0, float(view["delay"])))
        if "error" in view:
            raise RecognitionError(str(view["error"]), "the engine refused the image")
        size = dimensions(image)
        if size is None:
            raise RecognitionError("unsupportedImageFormat", "not an image")
        return build_data(view, size[0], size[1], output_figure)

    return recognize


def engine_function(recognizer: str) -> EngineFunction:
    """The engine function's handler object with the chosen recognizer (not loaded yet: ``preload``)."""
    loads: dict[str, Callable[[], Recognize]] = {"engine": embedded, "truth": truth_engine}
    try:
        return EngineFunction(loads[recognizer])
    except KeyError:
        raise ValueError(f"unknown engine recognizer {recognizer!r}; choose one of {RECOGNIZERS}") from None


def preload(fn: EngineFunction, deployment: EngineDeployment) -> None:
    """FC's initializer for the engine function (the embedded engine: about 5 s of model loading)."""
    from .context import FunctionMeta

    fn.initialize(FcContext(request_id="initializer", function=FunctionMeta(
        name=deployment.name, timeout=deployment.timeout, memory=deployment.memory)))


@dataclass
class EngineService:
    """The engine function alone on an FC stand-in (a stack without the function, tests): what the function's
    environment needs to reach it, and its invocations."""

    server: FcServer
    function: EngineFunction
    deployment: EngineDeployment

    def env(self) -> dict[str, str]:
        return {"ENGINE_ENDPOINT": f"http://{self.server.host}", "ENGINE_FUNCTION": self.deployment.name,
                "ENGINE_TIMEOUT_MS": LOCAL_ENGINE_TIMEOUT_MS}

    def calls(self) -> int:
        return sum(1 for i in self.server.state.invocations if i.function == self.deployment.name)

    def preload(self) -> None:
        preload(self.function, self.deployment)

    def stop(self) -> None:
        self.server.stop()


def serve_engine(keyring: Keyring, recognizer: str, *, faults: FaultPlan | None = None,
                 deployment: EngineDeployment | None = None) -> EngineService:
    d = deployment or EngineDeployment(ENGINE_FUNCTION_NAME)
    fn = engine_function(recognizer)
    server = start_fc(keyring, {d.name: (fn.handle, engine_runtime(d))}, faults=faults)
    return EngineService(server, fn, d)


def engine_runtime(d: EngineDeployment) -> Deployment:
    """The engine function as the local FC runtime runs it: no triggers, invoked synchronously."""
    return Deployment((), d.env, d.timeout, d.memory, 0, "", "")
