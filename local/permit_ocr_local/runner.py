"""The function deployed on the local stack: s.yaml's triggers and async policy, the real handler in this
process, configured exactly as FC would configure it (s.yaml env, with endpoints and credentials pointed at
the stand-ins). Used by ``permit-ocr run``, ``permit-ocr stack --trigger`` and the chaos run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .stack import LocalStack, StackOptions
from .trigger import AsyncInvoker, Deployment, OssTrigger, failure_payload, load_deployment

FAILURE_TOPIC = "permit-ocr-failures"


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
        return self

    def _on_failure(self, event: bytes, request_id: str, reason: str) -> None:
        """The onFailure destination: FC publishes the failed invocation to the failure topic."""
        assert self.stack.mns is not None
        arn = f"acs:fc:{self.stack.options.region}:local:functions/permit-ocr"
        body = json.dumps(failure_payload(event, request_id, reason, arn), ensure_ascii=False)
        self.stack.mns.state.publish(FAILURE_TOPIC, body, "fc-failure")

    def env(self) -> dict[str, str]:
        return function_env(self.deployment, self.stack) | self._env_overrides

    def wait_idle(self, timeout_s: float) -> bool:
        assert self.invoker is not None
        return self.invoker.wait_idle(timeout_s)

    def stop(self) -> None:
        if self.invoker is not None:
            self.invoker.close()
        self.stack.stop()

    def __enter__(self) -> LocalFunction:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
