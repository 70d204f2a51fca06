"""Serve the OSS, OCR and MNS stand-ins on 127.0.0.1 and print the ``export`` lines that point the function at
them. Objects are plain files under FOLDER/<bucket>/<key>. OCR answers with the embedded engine by default
(its models load at the start, about 5 s).

  eval "$(permit-ocr stack --root var/stack --detach)"   serve in the background; exports into this shell
  permit-ocr stack --root var/stack --stop               stop it (says what it stopped)

A second --detach on a folder already served reuses that stack (prints its exports again) instead of starting
another, unless it lacks what was asked (--trigger, --ocr-backend, --sinks, --bucket). --trigger S_YAML also
deploys the function locally: every upload matching s.yaml's triggers (native or EventBridge) runs the real
handler with the async policy, as FC would, and the FC API stand-in (FC_ENDPOINT, FC_FUNCTION_NAME in the
exports) serves InvokeFunction for `permit-ocr backfill` and `replay`. --backend engine|cascade and
--shadow-rate R also deploy the engine function on the FC stand-in (the embedded engine; docs/selfhosted.md) and
export OCR_BACKEND, SHADOW_RATE and ENGINE_*, so the function (triggered, or `permit-ocr invoke`) calls it
through the FC SDK as in the cloud. --faults FILE makes the stand-ins
misbehave as the JSON rules in FILE say (docs/faults.md): the rules are listed at start-up, each hit is logged
(stderr, or FOLDER/.stack/stack.log when detached).

Exit codes: 0 served, reused or stopped · 1 another stack serves the folder (or one lacking what was asked),
no stack serves it (--stop), or the stack failed to start (see FOLDER/.stack/stack.log) · 2 a bad --faults rule."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

STATE_DIR = ".stack"
STACK_ROOT_VAR = "PERMIT_OCR_STACK_ROOT"  # read by `permit-ocr invoke` (a command never imports another)
OPTIONS_FILE = "options.json"
START_TIMEOUT_S = 120  # the engine's models load in about 5 s; a busy machine can take many times that


def register(sub: Any) -> None:
    p = sub.add_parser("stack", help="serve the local stand-ins and print their exports",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True, metavar="FOLDER",
                   help="folder holding buckets as plain folders, e.g. var/stack (required)")
    p.add_argument("--bucket", action="append", help="bucket(s) to create (default: permit-ocr-demo)")
    p.add_argument("--ocr-backend", choices=("engine", "truth"), default="engine",
                   help="engine: the embedded recognizer, for any photo (default); truth: reads the truth "
                        "embedded in test images (tests)")
    p.add_argument("--sinks", default="oss", help="SINKS for the exports: oss, mns or oss,mns (default: oss)")
    p.add_argument("--trigger", type=Path, metavar="S_YAML",
                   help="also run the function on uploads per S_YAML's triggers, and serve the FC API "
                        "(default: no function, stand-ins only)")
    p.add_argument("--backend", choices=("api", "engine", "cascade"), default="api",
                   help="the function's OCR_BACKEND in the exports; engine and cascade serve the engine function "
                        "(default api)")
    p.add_argument("--shadow-rate", type=float, default=0.0, metavar="R",
                   help="the function's SHADOW_RATE (0-1, with --backend api); above 0 serves the engine function")
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


def wanted_options(args: argparse.Namespace) -> dict[str, str]:
    """What a stack started with these arguments serves (compared when one already serves the root)."""
    return {"trigger": str(args.trigger.resolve()) if args.trigger else "", "ocr_backend": args.ocr_backend,
            "sinks": args.sinks if not args.trigger else "", "buckets": ",".join(args.bucket or []),
            "backend": args.backend, "shadow_rate": f"{args.shadow_rate:g}"}


def served_options(state: Path) -> dict[str, str] | None:
    try:
        loaded = json.loads((state / OPTIONS_FILE).read_text())
    except (OSError, ValueError):
        return None  # a stack started before this file existed: nothing to compare
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else None


def conflicts(served: dict[str, str] | None, wanted: dict[str, str]) -> str:
    """Why the stack serving a root cannot stand for the one asked for ('' when it can): a stack with a
    trigger serves everything one without it does (its FC API included), not the other way round."""
    if served is None:
        return ""
    if wanted["trigger"] and served.get("trigger") != wanted["trigger"]:
        was = served.get("trigger")
        return (f"with --trigger {was}, not {wanted['trigger']}" if was else
                "without --trigger (no function, no FC_ENDPOINT)")
    if served.get("ocr_backend") != wanted["ocr_backend"]:
        return f"with --ocr-backend {served.get('ocr_backend')}, not {wanted['ocr_backend']}"
    for name in ("backend", "shadow_rate"):  # a stack from before these existed served api, 0
        was = served.get(name, {"backend": "api", "shadow_rate": "0"}[name])
        if was != wanted[name]:
            return f"with --{name.replace('_', '-')} {was}, not {wanted[name]}"
    if wanted["sinks"] and served.get("sinks") and served["sinks"] != wanted["sinks"]:
        return f"with --sinks {served['sinks']}, not {wanted['sinks']}"
    if wanted["buckets"] and served.get("buckets") != wanted["buckets"]:
        return f"with the bucket(s) {served.get('buckets') or 'permit-ocr-demo'}, not {wanted['buckets']}"
    return ""


def run(args: argparse.Namespace) -> int:
    state = args.root / STATE_DIR
    if not 0 <= args.shadow_rate <= 1 or (args.shadow_rate and args.backend != "api"):
        print("permit-ocr stack: --shadow-rate is 0 to 1, and goes with --backend api", file=sys.stderr)
        return 2
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
        conflict = conflicts(served_options(state), wanted_options(args))
        if conflict:
            print(f"permit-ocr: the stack (pid {pid}) serving {args.root} runs {conflict}; stop it first with "
                  f"`permit-ocr stack --root {args.root} --stop`", file=sys.stderr)
            return 1
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
    selfhosted = args.backend != "api" or args.shadow_rate > 0
    chosen = {"OCR_BACKEND": args.backend, "SHADOW_RATE": f"{args.shadow_rate:g}"} if selfhosted else {}
    runner: Any
    engine: Any = None
    if args.trigger:
        runner = LocalFunction(args.trigger, args.root, ocr_backend=args.ocr_backend, stack_options={"faults": plan},
                               env_overrides=chosen, engine="engine" if selfhosted else None).start()
    else:
        opts = StackOptions(root=args.root, buckets=tuple(args.bucket or [DEFAULT_BUCKET]),
                            ocr_backend=args.ocr_backend, sinks=args.sinks, faults=plan)
        runner = LocalStack(opts).start()
        if selfhosted:  # the engine function alone on an FC stand-in: `permit-ocr invoke` calls it
            from permit_ocr_local.fcruntime.enginefn import serve_engine

            engine = serve_engine(runner.keyring, "engine", faults=plan)
    # the folder served, for the tools' hints ("the file belongs at var/stack/<bucket>/<key>")
    env = {**runner.env(), **(engine.env() if engine else {}), **chosen, STACK_ROOT_VAR: str(args.root.resolve())}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    state.mkdir(parents=True, exist_ok=True)
    (state / "pid").write_text(str(os.getpid()))
    try:
        runner.preload()  # the engines' models (the OCR stand-in's, the engine function's): no upload waits
        if engine is not None:
            engine.preload()
        (state / OPTIONS_FILE).write_text(json.dumps(wanted_options(args)))
        (state / "env.sh").write_text(shell_exports(env))
        announce.write(shell_exports(env))
        announce.flush()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        print("permit-ocr stack: stopped", file=sys.stderr)
    finally:
        if args.trigger:  # the function ran here: give back the claims of uploads it was recognizing
            from permit_ocr_local.fcruntime.interrupt import release_claims

            release_claims()
        if engine is not None:
            engine.stop()
        runner.stop()
        (state / "pid").unlink(missing_ok=True)
    return 0


def _detach(args: argparse.Namespace, state: Path) -> int:
    state.mkdir(parents=True, exist_ok=True)
    env_file = state / "env.sh"
    env_file.unlink(missing_ok=True)
    if args.ocr_backend == "engine" or args.backend != "api" or args.shadow_rate:  # a sign of life: the exports
        # come once the models are in memory
        print("permit-ocr: starting the stack; loading the OCR engine's models (about 5 s, once per stack) ...",
              file=sys.stderr, flush=True)
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
    try:
        return _await_exports(pid, state)
    except KeyboardInterrupt:  # the exports never came: stop the stack that was starting, in one line
        _end(pid)
        print("permit-ocr stack: interrupted; stopped the stack that was starting", file=sys.stderr)
        return 130


def _await_exports(pid: int, state: Path) -> int:
    env_file = state / "env.sh"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if env_file.exists() and env_file.stat().st_size:
            sys.stdout.write(env_file.read_text())
            return 0
        if os.waitpid(pid, os.WNOHANG)[0]:
            print(f"permit-ocr: the stack failed to start; see {state / 'stack.log'}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    _end(pid)
    print(f"permit-ocr: the stack did not start within {START_TIMEOUT_S} s (stopped it); see {state / 'stack.log'}",
          file=sys.stderr)
    return 1


def _end(pid: int, wait_s: float = 30) -> None:
    """SIGTERM the stack process and reap it (it stops its servers and removes its pid file first)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave it half-stopped
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not os.waitpid(pid, os.WNOHANG)[0]:
        time.sleep(0.05)


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
    names = {"OSS_ENDPOINT": "OSS", "OCR_ENDPOINT": "OCR", "MNS_ENDPOINT": "MNS", "FC_ENDPOINT": "FC",
             "ENGINE_ENDPOINT": "engine function"}
    found = []
    for line in text.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name in names:
            found.append(f"{names[name]} {value.strip(chr(39))}")
    return ", ".join(found)
