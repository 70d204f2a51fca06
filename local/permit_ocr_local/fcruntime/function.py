"""The function deployed on the local stack: s.yaml's triggers and async policy, the real handler in this
process, configured exactly as FC would configure it (s.yaml env, with endpoints and credentials pointed at
the stand-ins). Used by ``permit-ocr run``, ``permit-ocr stack --trigger`` and the chaos run."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .deployment import Deployment, load_deployment
from .fcapi import start_fc
from .invoker import AsyncInvoker, failure_payload
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
                 stack_options: dict[str, Any] | None = None, env_overrides: dict[str, str] | None = None) -> None:
        self.deployment = load_deployment(s_yaml)
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
        os.environ.update(function_env(self.deployment, self.stack) | self._env_overrides)
        reset_app()
        self.invoker = AsyncInvoker(handler, deployment=self.deployment, instances=self._instances,
                                    on_failure=self._on_failure)
        trigger = OssTrigger(self.deployment.triggers, self.invoker, self.stack.options.region)
        self.stack.oss.service.state.subscribe(trigger.on_put)
        # the FC API too, so backfill and replay can invoke the same function over HTTP
        self.fc = start_fc(self.stack.keyring, {FUNCTION_NAME: (handler, self.deployment)},
                           faults=self.stack.faults, instances=self._instances,
                           on_failure=lambda _name, event, rid, why, count: self._on_failure(event, rid, why, count))
        return self

    def _on_failure(self, event: bytes, request_id: str, reason: str, invoke_count: int = 1) -> None:
        """The onFailure destination: FC publishes the failed invocation to the failure topic."""
        assert self.stack.mns is not None
        arn = f"acs:fc:{self.stack.options.region}:local:functions/permit-ocr"
        body = json.dumps(failure_payload(event, request_id, reason, arn, invoke_count), ensure_ascii=False)
        self.stack.mns.state.publish(FAILURE_TOPIC, body, "fc-failure")

    def env(self) -> dict[str, str]:
        env = function_env(self.deployment, self.stack) | self._env_overrides
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
