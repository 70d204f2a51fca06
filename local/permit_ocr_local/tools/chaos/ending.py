"""How the chaos run waits and ends: until FC's queues and the scripted world are quiet, then, with faults off,
the operator's end stage (replay of the failure topic, backfill of every source bucket) until a round sends
nothing. A delivery deferred by a live claim is what FC retries later: rounds wait for such claims to expire."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from permit_ocr.layout import MARKERS_PREFIX, key_digest
from permit_ocr.ledger import CLOCK_SKEW_S, RUNNING, parse_holder
from permit_ocr_local.fcruntime.function import FAILURE_TOPIC, FUNCTION_NAME, LocalFunction

from .scripts import Script
from .world import Scheduler

END_ROUNDS = 6  # replay-then-backfill rounds at most
RECENT_S = 300  # claims are taken for at most a minute or so: older markers hold nothing


def settle(fn: LocalFunction, scheduler: Scheduler, timeout_s: float) -> bool:
    """Until FC's queues are empty and no scripted action is pending (an action may queue more events)."""
    end = time.monotonic() + timeout_s
    while True:
        idle = fn.wait_idle(max(0.0, end - time.monotonic()))
        if not scheduler.wait_empty(max(0.0, end - time.monotonic())):
            return False
        if fn.wait_idle(0.0):
            return idle
        if time.monotonic() > end:
            return False


def end_stage(fn: LocalFunction, script: Script, buckets: Sequence[str], root: Path,
              timeout_s: float) -> list[dict[str, int]]:
    """Faults are off. What FC gave up on is replayed from the failure topic (``permit-ocr replay
    --failure-log``), then every source bucket is backfilled (``permit-ocr backfill``), as an operator would;
    rounds repeat until one sends nothing. Returns what each round did."""
    assert fn.stack.mns is not None
    fn.wait_idle(timeout_s)
    failures = root / "chaos-failure-log.jsonl"
    rounds: list[dict[str, int]] = []
    seen = 0
    for n in range(END_ROUNDS):
        if n:  # FC's later retries: a delivery deferred by a live claim comes back once it has expired
            time.sleep(max(0.0, min(claims_live_until(script, buckets) - time.time(), 120.0)))
        messages = fn.stack.mns.state.messages(FAILURE_TOPIC)
        failures.write_text("".join(m.body + "\n" for m in messages[seen:]), encoding="utf-8")
        fresh, seen = len(messages) - seen, len(messages)
        replayed = sum(cli(fn, "replay", b, timeout_s, "--failure-log", str(failures)) for b in buckets) \
            if fresh else 0
        fn.wait_idle(timeout_s)
        backfilled = sum(cli(fn, "backfill", b, timeout_s) for b in buckets)
        fn.wait_idle(timeout_s)
        rounds.append({"round": n + 1, "failed events": fresh, "replayed": replayed, "backfilled": backfilled})
        if not replayed and not backfilled:
            break
    return rounds


def claims_live_until(script: Script, buckets: Sequence[str]) -> float:
    """When the last claim still running on a version without a settled outcome expires, as others count it (a
    holder that stored the outcome leaves its claim to expire: those hold nothing back)."""
    state = script.state
    recent = time.time_ns() - RECENT_S * 10**9
    items = {key_digest(script.bucket_of(it), it.key): it for it in script.workload.items}
    latest = 0.0
    for bucket in {script.cfg.output_bucket_for(b) for b in buckets}:
        after = ""
        while True:
            page = state.list_v2(bucket, prefix=MARKERS_PREFIX, max_keys=1000, after=after)
            for m in page.objects:
                item = items.get(m.key[len(MARKERS_PREFIX):].split("/", 1)[0])
                if m.mtime_ns < recent or item is None or script.stored(item) == "final":
                    continue
                with contextlib.suppress(Exception):  # gone meanwhile, or not a marker body: holds nothing
                    holder = parse_holder(state.get(bucket, m.key)[1])
                    if holder is not None and holder.state == RUNNING:
                        latest = max(latest, holder.expires_at + CLOCK_SKEW_S + 1.0)
            if not page.truncated:
                break
            after = page.last
    return latest


def cli(fn: LocalFunction, command: str, bucket: str, timeout_s: float, *extra: str) -> int:
    """``permit-ocr <command>`` as an operator runs it (its own process, the function's variables); the records
    it sent to FC."""
    assert fn.fc is not None
    env = {**os.environ, **fn.env(), "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-m", "permit_ocr_local.cli", command, "--bucket", bucket, "--rate", "1000",
            "--batch", "20", "--no-progress", "--endpoint", f"http://{fn.fc.host}", "--function", FUNCTION_NAME,
            *extra]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            return int(json.loads(line)["counts"].get("invoked_records", 0))
    raise RuntimeError(f"permit-ocr {command} exited {done.returncode} without a summary: {done.stderr[-500:]}")
