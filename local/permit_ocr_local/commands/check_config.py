"""permit-ocr check-config [S_YAML] [--env KEY=VAL ...] [--live]: check a deployment file (s.yaml,
s.eventbridge.yaml) before `s deploy`: trigger loops, trigger events, the timeout against the OCR retries and a
full backfill event, every variable's value, the package build before deploy, the OCR quota. Offline, except
--live, which also asks OSS (with the credentials and OSS_ENDPOINT of this shell: the stack's exports, or a real
account's) whether the bucket(s) that will hold the claims have versioning, which the function refuses at start.

--print-policy prints the function role's RAM policy rendered from the same file instead
(deploy/ram-policy.json is that output with --account-id '*'); --print-lifecycle prints the OSS lifecycle
rule (XML, for ossutil or the console) that expires the version markers, and names its bucket(s) on stderr.

Exit codes: 0 every check passed (warnings allowed) · 1 a check failed, or the file is not valid YAML or has
no fc3 function · 2 usage (an unknown option, a bad --env).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from permit_ocr.config import ConfigError
from permit_ocr_local.fcruntime import deployment
from permit_ocr_local.tools import deploycheck


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _key_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return name, value


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("check-config", help="check s.yaml for trigger loops and config mistakes",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("s_yaml", nargs="?", default="s.yaml", metavar="S_YAML", help="default: ./s.yaml")
    p.add_argument("--env", action="append", type=_key_value, default=[], metavar="KEY=VAL",
                   help="override an environment variable of the function (repeatable)")
    p.add_argument("--account-id", default=None, metavar="UID",
                   help='value of ${config("AccountID")} (default: a placeholder; "*" in --print-policy)')
    p.add_argument("--print-policy", action="store_true", help="print the function role's RAM policy JSON")
    p.add_argument("--live", action="store_true",
                   help="also ask OSS whether the output bucket(s) have versioning (needs credentials in the env)")
    p.add_argument("--print-lifecycle", action="store_true",
                   help="print the OSS lifecycle rule (PutBucketLifecycle XML) that expires the version markers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = dict(args.env)
    try:
        doc = deployment.load_s_yaml(args.s_yaml)
        if args.print_policy:
            policy = deploycheck.render_policy(doc, args.account_id or deploycheck.POLICY_ACCOUNT_ID, overrides)
            sys.stdout.write(deploycheck.policy_json(policy))
            return 0
        if args.print_lifecycle:  # stdout is the XML alone (well-formed, ready for a file); the buckets on stderr
            rendered = deploycheck.render_lifecycle(doc, overrides)
            sys.stdout.write(next(iter(rendered.values()), ""))
            print(f"permit-ocr check-config: apply this rule to the output bucket(s) {', '.join(rendered)} (it "
                  "replaces a bucket's lifecycle rules: merge it with the ones it has)", file=sys.stderr)
            return 0
    except deployment.DeployCheckError as exc:
        print(f"permit-ocr check-config: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"permit-ocr check-config: {_one_line(str(exc))}; run `permit-ocr check-config {args.s_yaml}` for "
              "details", file=sys.stderr)
        return 1
    findings = deploycheck.check_deployment(doc, overrides, args.account_id or deployment.CHECK_ACCOUNT_ID)
    if args.live:
        findings += _live(doc, overrides)
    print(f"check-config {args.s_yaml}")
    print(deploycheck.format_findings(findings))
    return 1 if deploycheck.failed(findings) else 0


def _live(doc: dict[str, Any], overrides: dict[str, str]) -> list[deploycheck.Finding]:
    from permit_ocr.credentials import MissingCredentials, resolve
    from permit_ocr.storage import Storage
    from permit_ocr_local.tools.deploycheck import live

    resolved, _ = deployment.resolve(doc, deployment.CHECK_ACCOUNT_ID)
    _name, props = deployment.function_resource(resolved)
    try:
        cfg = live.live_config({k: str(v) for k, v in deployment.environment(props, overrides).items()}, os.environ)
        creds = resolve(os.environ, None)
    except (ConfigError, MissingCredentials) as exc:
        return [deploycheck.Finding("error", "versioning", f"--live cannot ask OSS: {exc}",
                                    'export ALIBABA_CLOUD_* credentials (or eval "$(permit-ocr stack ...)")')]
    return live.check_claim_buckets(cfg, Storage(cfg, lambda: creds).bucket_versioning)
