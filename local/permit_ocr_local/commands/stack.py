"""Serve the OSS, OCR and MNS stand-ins on 127.0.0.1 and print the ``export`` lines that point the function at
them. Objects are plain files under DIR/<bucket>/<key>. OCR answers with the embedded engine by default.

  eval "$(permit-ocr stack --root DIR --detach)"   serve in the background; exports into this shell
  permit-ocr stack --root DIR --stop               stop it (says what it stopped)

A second --detach on a root already served reuses that stack (prints its exports again) instead of starting
another. --trigger S_YAML also deploys the function locally: every upload matching s.yaml's triggers (native or
EventBridge) runs the real handler with the async policy, as FC would, and the FC API stand-in (FC_ENDPOINT,
FC_FUNCTION_NAME in the exports) serves InvokeFunction for `permit-ocr backfill` and `replay`.
--faults FILE makes the stand-ins misbehave as the JSON rules in FILE say (docs/faults.md): the rules are
listed at start-up, each hit is logged (stderr, or DIR/.stack/stack.log when detached), a bad rule exits 2."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

STATE_DIR = ".stack"


def register(sub: Any) -> None:
    p = sub.add_parser("stack", help="serve the local stand-ins and print their exports",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True, help="folder holding buckets as plain files (required)")
    p.add_argument("--bucket", action="append", help="bucket(s) to create (default: permit-ocr-demo)")
    p.add_argument("--ocr-backend", choices=("engine", "truth"), default="engine",
                   help="engine: the embedded recognizer, for any photo (default); truth: reads the truth "
                        "embedded in test images (tests)")
    p.add_argument("--sinks", default="oss", help="SINKS for the exports: oss, mns or oss,mns (default: oss)")
    p.add_argument("--trigger", type=Path, metavar="S_YAML",
                   help="also run the function on uploads per S_YAML's triggers, and serve the FC API "
                        "(default: no function, stand-ins only)")
    p.add_argument("--faults", type=Path, metavar="FILE",
                   help="inject the faults FILE scripts: a JSON list of rules (docs/faults.md)")
    p.add_argument("--detach", action="store_true", help="serve in the background; print exports and return")
    p.add_argument("--stop", action="store_true", help="stop a detached stack serving --root")
    p.set_defaults(func=run)


def running_pid(state: Path) -> int | None:
    """The pid of the stack serving this root, or None (a pid file left by a dead stack is removed)."""
    pid_file = state / "pid"
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError):
        return None
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return None
    except PermissionError:  # alive, another user's
        return pid
    return pid


def run(args: argparse.Namespace) -> int:
    state = args.root / STATE_DIR
    if args.stop:
        return _stop(state)
    if args.faults is not None:
        from permit_ocr_local.standins.faults import RuleError, load_rules

        try:
            args.fault_rules = load_rules(args.faults)
        except RuleError as exc:
            print(f"permit-ocr: --faults {args.faults}: {exc}", file=sys.stderr)
            return 2
    pid = running_pid(state)
    if args.faults is not None:
        if pid is not None:  # its rules cannot change: reusing it would silently run without these
            print(f"permit-ocr: a stack (pid {pid}) already serves {args.root}: stop it (`permit-ocr stack --root "
                  f"{args.root} --stop`) to start one with --faults {args.faults}", file=sys.stderr)
            return 1
        from permit_ocr_local.fcruntime.stack import announce_rules

        announce_rules(args.fault_rules, sys.stderr)
    if pid is not None:
        if args.detach and (state / "env.sh").is_file():  # a new shell lost the exports: give them again
            print(f"permit-ocr: reusing the stack (pid {pid}) already serving {args.root}; "
                  f"`permit-ocr stack --root {args.root} --stop` first to start another", file=sys.stderr)
            sys.stdout.write((state / "env.sh").read_text())
            return 0
        print(f"permit-ocr: a stack (pid {pid}) already serves {args.root}: use its exports "
              f"(. {state / 'env.sh'}) or stop it with `permit-ocr stack --root {args.root} --stop`", file=sys.stderr)
        return 1
    if args.detach:
        return _detach(args, state)
    return _serve(args, state, announce=sys.stdout)


def _serve(args: argparse.Namespace, state: Path, announce: Any) -> int:
    from permit_ocr_local.fcruntime.function import LocalFunction
    from permit_ocr_local.fcruntime.stack import DEFAULT_BUCKET, LocalStack, StackOptions, report_hits, shell_exports
    from permit_ocr_local.standins.faults import FaultPlan

    plan = FaultPlan(rules=getattr(args, "fault_rules", ()), on_hit=report_hits(sys.stderr))
    runner: Any
    if args.trigger:
        runner = LocalFunction(args.trigger, args.root, ocr_backend=args.ocr_backend,
                               stack_options={"faults": plan}).start()
        env = runner.env()
    else:
        opts = StackOptions(root=args.root, buckets=tuple(args.bucket or [DEFAULT_BUCKET]),
                            ocr_backend=args.ocr_backend, sinks=args.sinks, faults=plan)
        runner = LocalStack(opts).start()
        env = runner.env()
    state.mkdir(parents=True, exist_ok=True)
    (state / "env.sh").write_text(shell_exports(env))
    (state / "pid").write_text(str(os.getpid()))
    announce.write(shell_exports(env))
    announce.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()
        (state / "pid").unlink(missing_ok=True)
    return 0


def _detach(args: argparse.Namespace, state: Path) -> int:
    state.mkdir(parents=True, exist_ok=True)
    env_file = state / "env.sh"
    env_file.unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:  # the server: its own session, output to a log file under the root
        os.setsid()
        log = open(state / "stack.log", "ab", buffering=0)  # noqa: SIM115 - lives as long as the process
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        with open(os.devnull, "rb") as devnull:
            os.dup2(devnull.fileno(), 0)
        with open(os.devnull, "w") as sink:
            code = _serve(args, state, announce=sink)
        os._exit(code)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if env_file.exists() and env_file.stat().st_size:
            sys.stdout.write(env_file.read_text())
            return 0
        if os.waitpid(pid, os.WNOHANG)[0]:
            print(f"permit-ocr: the stack failed to start; see {state / 'stack.log'}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print("permit-ocr: the stack did not start within 30 s", file=sys.stderr)
    return 1


def _stop(state: Path) -> int:
    pid = running_pid(state)
    if pid is None:
        print(f"permit-ocr: no stack is serving {state.parent}", file=sys.stderr)
        return 1
    served = _endpoints(state / "env.sh")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while (state / "pid").exists() and time.monotonic() < deadline:  # the stack removes it when it is down
        time.sleep(0.05)
    print(f"permit-ocr: stopped the stack (pid {pid}) serving {state.parent}" + (f": {served}" if served else ""))
    return 0


def _endpoints(env_file: Path) -> str:
    """'OSS http://..., OCR ..., MNS ...' from the exports file, for the --stop message."""
    try:
        text = env_file.read_text()
    except FileNotFoundError:
        return ""
    names = {"OSS_ENDPOINT": "OSS", "OCR_ENDPOINT": "OCR", "MNS_ENDPOINT": "MNS", "FC_ENDPOINT": "FC"}
    found = []
    for line in text.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name in names:
            found.append(f"{names[name]} {value.strip(chr(39))}")
    return ", ".join(found)
