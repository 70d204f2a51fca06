"""``permit-ocr stack --root DIR``: serve the OSS, OCR and MNS stand-ins on 127.0.0.1 and print the
``export`` lines that point the function at them. Objects are plain files under DIR/<bucket>/<key>.

--detach forks the servers into the background, prints the exports and returns, so
``eval "$(permit-ocr stack --root DIR --detach)"`` followed by ``permit-ocr invoke EVENT_FILE`` works;
``permit-ocr stack --root DIR --stop`` ends them. --trigger S_YAML also runs the function on every upload that
matches s.yaml's triggers (the async policy included), as FC would."""

from __future__ import annotations

import argparse
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
    p.add_argument("--root", type=Path, required=True, help="folder holding buckets as plain files")
    p.add_argument("--bucket", action="append", help="bucket(s) to create (default permit-ocr-demo)")
    p.add_argument("--ocr-backend", choices=("truth", "engine"), default="truth",
                   help="truth: reads the truth carried by test images; engine: the embedded recognizer")
    p.add_argument("--sinks", default="oss", help="SINKS for the exports: oss, mns or oss,mns")
    p.add_argument("--trigger", type=Path, metavar="S_YAML", help="run the function on uploads, per s.yaml")
    p.add_argument("--detach", action="store_true", help="serve in the background; print exports and return")
    p.add_argument("--stop", action="store_true", help="stop a detached stack serving --root")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    state = args.root / STATE_DIR
    if args.stop:
        return _stop(state)
    if args.detach:
        return _detach(args, state)
    return _serve(args, state, announce=sys.stdout)


def _serve(args: argparse.Namespace, state: Path, announce: Any) -> int:
    from permit_ocr_local.runner import LocalFunction
    from permit_ocr_local.stack import DEFAULT_BUCKET, LocalStack, StackOptions, shell_exports

    runner: Any
    if args.trigger:
        runner = LocalFunction(args.trigger, args.root, ocr_backend=args.ocr_backend).start()
        env = runner.env()
    else:
        opts = StackOptions(root=args.root, buckets=tuple(args.bucket or [DEFAULT_BUCKET]),
                            ocr_backend=args.ocr_backend, sinks=args.sinks)
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
    pid_file = state / "pid"
    if not pid_file.exists():
        print(f"permit-ocr: no stack is serving {state.parent}", file=sys.stderr)
        return 1
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
    return 0
