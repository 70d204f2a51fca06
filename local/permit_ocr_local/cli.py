"""The ``permit-ocr`` console script: a thin dispatcher over ``permit_ocr_local.commands``.

Sub-command modules are imported only when named, so ``permit-ocr validate`` does not pay for the OCR engine.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

DESCRIPTION = """permit-ocr: the local tools of the OSS upload -> OCR (RecognizeExitEntryPermitToMainland) function.
Everything runs offline against local stand-ins of OSS, the OCR API, MNS and FC on 127.0.0.1.

start here:
  permit-ocr run                                      upload samples/ through s.yaml's trigger; table of results
  eval "$(permit-ocr stack --root var/stack --detach)"  serve the stand-ins in the background
  permit-ocr invoke --object permit-ocr-demo/uploads/x.jpg   run the function on a stored object
  permit-ocr check-config s.yaml                      check a deployment file before `s deploy`

`permit-ocr COMMAND --help` describes each command and its exit codes."""

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
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="permit-ocr", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        if wanted == name:
            mod = importlib.import_module(f"permit_ocr_local.commands.{module}")
            mod.register(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_in)
    args = parser.parse_args(args_in)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
