"""The ``permit-ocr`` console script: a thin dispatcher over ``permit_ocr_local.commands``.

Sub-command modules are imported only when named, so ``permit-ocr validate`` does not pay for the OCR engine.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

DESCRIPTION = """permit-ocr: the local tools of the OSS upload -> OCR (RecognizeExitEntryPermitToMainland) function.
Everything runs offline against local stand-ins of OSS, the OCR API, MNS and FC on 127.0.0.1.

start here:
  permit-ocr run                                      upload samples/ through s.yaml's trigger; table of results
  eval "$(permit-ocr stack --root var/stack --detach)"  serve the stand-ins in the background
  permit-ocr invoke --object permit-ocr-demo/uploads/x.jpg   run the function on a stored object
  permit-ocr check-config s.yaml                      check a deployment file before `s deploy`

`permit-ocr COMMAND --help` describes each command, its defaults and its exit codes."""

# name on the command line -> module in permit_ocr_local.commands, and its one-line help
COMMANDS: dict[str, tuple[str, str]] = {
    "invoke": ("invoke", "run the handler once on an event file, config from the environment"),
    "stack": ("stack", "serve the local OSS, OCR, MNS and FC stand-ins and print their exports"),
    "run": ("run", "the main job offline: stack + trigger + samples, then a table of results"),
    "recognize": ("recognize", "read permits with the embedded engine and print the Data JSON"),
    "check-config": ("check_config", "check s.yaml for trigger loops and config mistakes"),
    "validate": ("validate", "validate result/error documents against the JSON schema"),
    "backfill": ("backfill", "invoke the function for objects already in a bucket"),
    "replay": ("replay", "re-invoke images that ended with an error record"),
    "review": ("review", "the review page for flagged results, on 127.0.0.1"),
    "shadow-report": ("shadow_report", "shadow mode's comparison of the engine with the API, summed up"),
}


CLAIM_HOLDERS = ("run", "invoke", "stack")  # commands that run the function in this process


def plain(text: str) -> str:
    """A docstring as help text: reST's ``literal`` marks read as noise on a terminal."""
    return re.sub(r"``([^`]+)``", r"\1", text)


def suggestion(word: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one line that suggests the option or command meant (Python 3.12's argparse
    suggests nothing) and whose help shows docstrings without reST marks. Sub-command parsers are of this class
    too (add_subparsers makes them of the parent's class)."""

    chosen: Parser | None = None  # the sub-command parser built for this command line
    argv: Sequence[str] = ()  # that command line (a mistyped option explains a "required" error: --buckt)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("description"):
            kwargs["description"] = plain(kwargs["description"])
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def options(self) -> list[str]:
        return [s for action in self._actions for s in action.option_strings]

    def error(self, message: str) -> NoReturn:
        target = self.chosen or self
        mistyped = [a for a in self.argv if a.startswith("--") and a.split("=")[0] not in target.options()]
        if message.startswith("the following arguments are required") and mistyped:
            message = f"unrecognized arguments: {' '.join(mistyped)}"  # the cause, not its consequence
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        choice = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if unknown:
            words = unknown.group(1).split()
            first = next((w for w in words if w.startswith("-")), words[0])
            said = (f"no option {first}{suggestion(first.split('=')[0], target.options())}" if first.startswith("-")
                    else f"unexpected argument {first!r}")
        elif choice:
            known = re.findall(r"'([^']*)'", choice.group(3))
            what = "no command" if choice.group(1) == "COMMAND" else f"{choice.group(1)}: no value"
            said = f"{what} {choice.group(2)!r}{suggestion(choice.group(2), known)} (one of {', '.join(known)})"
        else:
            said = message
        print(f"{target.prog}: {' '.join(said.split())} (see `{target.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def build_parser(argv: Sequence[str]) -> Parser:
    parser = Parser(prog="permit-ocr", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        if wanted == name:
            mod = importlib.import_module(f"permit_ocr_local.commands.{module}")
            mod.register(sub)
            parser.chosen = sub.choices[name]
            parser.chosen.argv = parser.argv = argv
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    from permit_ocr_local.fcruntime import interrupt

    if argv is None:  # the console script, not a test calling main(): take Ctrl-C over for the process
        interrupt.watch_ctrl_c()
    try:
        parser = build_parser(args_in)  # imports the command's module: Ctrl-C may land here on a busy machine
        if not args_in:  # `permit-ocr` alone: what it can do, not "the following arguments are required"
            parser.print_help()
            return 2
        args = parser.parse_args(args_in)
    except KeyboardInterrupt:  # before the command could take Ctrl-C over: still one line, nothing held yet
        name = args_in[0] if args_in and args_in[0] in COMMANDS else ""
        print(f"permit-ocr{' ' + name if name else ''}: interrupted", file=sys.stderr, flush=True)
        return 130
    try:
        result = args.func(args)
    except Exception:
        if interrupt.PRESSED.is_set():  # a library turned the interrupt into its own error: still an interrupt
            if args_in[0] in CLAIM_HOLDERS:
                interrupt.interrupted(args_in[0])  # releases the claims this process's attempts hold
            print(f"permit-ocr {args_in[0]}: interrupted", file=sys.stderr, flush=True)
            os._exit(interrupt.EXIT_INTERRUPTED)  # the engine's native threads abort an ordinary shutdown
        raise
    if argv is None:  # the work is done and printed: a Ctrl-C during shutdown must not turn exit 0 into -SIGINT
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
