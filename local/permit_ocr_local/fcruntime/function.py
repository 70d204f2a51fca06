"""The function deployed on the local stack: s.yaml's triggers and async policy, the real handler in this
process, configured exactly as FC would configure it (s.yaml env, with endpoints and credentials pointed at
the stand-ins). Used by ``permit-ocr run``, ``permit-ocr stack --trigger`` and the chaos run. With ``engine``,
the engine function is deployed beside it on the FC stand-in (enginefn.py) and the function is pointed at it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .deployment import Deployment, EngineDeployment, load_deployment, load_engine_deployment
from .enginefn import ENGINE_FUNCTION_NAME, LOCAL_ENGINE_TIMEOUT_MS, engine_function, engine_runtime
from .enginefn import preload as preload_engine
from .fcapi import start_fc
from .invoker import AsyncInvoker, Handler, failure_payload
from .stack import LocalStack, StackOptions
from .trigger import OssTrigger

FAILURE_TOPIC = "permit-ocr-failures"
FUNCTION_NAME = "permit-ocr"


def function_env(deployment: Deployment, stack: LocalStack) -> dict[str, str]:
    """s.yaml's variables, with what only the stack knows (endpoints, credentials, topic) laid over them."""
    env = dict(deployment.env)
    env.update(stack.env())
    env["SINKS"] = deployment.env.get("SINKS", "oss")
    return env


class LocalFunction:
    def __init__(self, s_yaml: Path, root: Path, *, ocr_backend: str = "truth", instances: int = 2,
                 stack_options: dict[str, Any] | None = None, env_overrides: dict[str, str] | None = None,
                 engine: str | None = None) -> None:
        self.deployment = load_deployment(s_yaml)
        # the engine function (its recognizer: engine or truth), as the file declares it or with defaults
        self.engine_deployment: EngineDeployment | None = None
        self.engine: Any = None
        if engine is not None:
            self.engine_deployment = load_engine_deployment(s_yaml) or EngineDeployment(ENGINE_FUNCTION_NAME)
            self.engine = engine_function(engine)
        opts = StackOptions(root=root, buckets=(self.deployment.bucket,), ocr_backend=ocr_backend,
                            **(stack_options or {}))
        self.stack = LocalStack(opts)
        self._instances = instances
        self._env_overrides = env_overrides or {}
        self.invoker: AsyncInvoker | None = None
        self.fc: Any = None

    def start(self) -> LocalFunction:
        from permit_ocr.handler import handler, reset_app

        self.stack.start()
        assert self.stack.mns is not None and self.stack.oss is not None
        self.stack.mns.state.create_topic(FAILURE_TOPIC)
        # the FC API too, so backfill and replay can invoke the same function over HTTP (and it the engine)
        functions: dict[str, tuple[Handler, Deployment]] = {FUNCTION_NAME: (handler, self.deployment)}
        if self.engine is not None and self.engine_deployment is not None:
            functions[self.engine_deployment.name] = (self.engine.handle, engine_runtime(self.engine_deployment))
        self.fc = start_fc(self.stack.keyring, functions, faults=self.stack.faults, instances=self._instances,
                           on_failure=lambda _name, event, rid, why, count: self._on_failure(event, rid, why, count))
        os.environ.update(self.env())
        reset_app()
        self.invoker = AsyncInvoker(handler, deployment=self.deployment, instances=self._instances,
                                    on_failure=self._on_failure)
        trigger = OssTrigger(self.deployment.triggers, self.invoker, self.stack.options.region)
        self.stack.oss.service.state.subscribe(trigger.on_put)
        return self

    def preload(self) -> None:
        """Load what has models to load (the OCR stand-in's engine, the engine function's), before any upload."""
        self.stack.preload()
        if self.engine is not None and self.engine_deployment is not None:
            preload_engine(self.engine, self.engine_deployment)

    def engine_calls(self) -> int:
        """Synchronous invocations of the engine function the FC stand-in accepted."""
        if self.fc is None or self.engine_deployment is None:
            return 0
        name = self.engine_deployment.name
        return sum(1 for i in self.fc.state.invocations if i.function == name and i.kind == "Sync")

    def _on_failure(self, event: bytes, request_id: str, reason: str, invoke_count: int = 1) -> None:
        """The onFailure destination: FC publishes the failed invocation to the failure topic."""
        assert self.stack.mns is not None
        arn = f"acs:fc:{self.stack.options.region}:local:functions/permit-ocr"
        body = json.dumps(failure_payload(event, request_id, reason, arn, invoke_count), ensure_ascii=False)
        self.stack.mns.state.publish(FAILURE_TOPIC, body, "fc-failure")

    def env(self) -> dict[str, str]:
        env = function_env(self.deployment, self.stack)
        if self.fc is not None and self.engine_deployment is not None:  # what only the stack knows, then overrides
            env |= {"ENGINE_ENDPOINT": f"http://{self.fc.host}", "ENGINE_FUNCTION": self.engine_deployment.name,
                    "ENGINE_TIMEOUT_MS": LOCAL_ENGINE_TIMEOUT_MS}
        env |= self._env_overrides
        if self.fc is not None:
            env |= {"FC_ENDPOINT": f"http://{self.fc.host}", "FC_FUNCTION_NAME": FUNCTION_NAME}
        return env

    def wait_idle(self, timeout_s: float) -> bool:
        """Until both async queues (the OSS trigger's and the FC API's) are empty."""
        assert self.invoker is not None
        end = time.monotonic() + timeout_s
        idle = self.invoker.wait_idle(timeout_s)
        if self.fc is not None:
            idle = self.fc.wait_idle(max(0.0, end - time.monotonic())) and idle
        return idle

    def stop(self) -> None:
        if self.invoker is not None:
            self.invoker.close()
        if self.fc is not None:
            self.fc.stop()
        self.stack.stop()

    def __enter__(self) -> LocalFunction:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
