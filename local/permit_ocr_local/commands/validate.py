"""``permit-ocr validate FILE...``: check result/error documents against schema/ and show their checks.

For a result the checks are re-run with the current ``normalize.review`` on the stored ``data`` (so documents
written by older versions get today's rules), dated at the document's own processing day, and compared
with the stored verdict. Output never contains a name, birth date, permit number, object key or error
message unless ``--show-values`` is given: these documents hold personal data and terminals get pasted.
Exit codes: 0 every file is a valid document · 1 otherwise (needsReview does not change it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from permit_ocr.normalize import review
from permit_ocr_local.tools.schemas import validate_document

DEFAULT_MIN_PROB: Final = 90  # REVIEW_MIN_PROB's default in permit_ocr.config
CHINA: Final = datetime.timezone(datetime.timedelta(hours=8))  # the card's dates are local dates
# normalized values worth showing with --show-values, in display order
SHOWN: Final = (
    "kind", "surname", "givenNames", "sex", "birthDate", "validFrom", "validTo", "expired",
    "permitNumber", "issueCount",
)  # fmt: skip


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "validate",
        help="validate result/error documents against the JSON schema",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="result (<key>.json) or error document")
    p.add_argument("--show-values", action="store_true", help="also print names, dates, numbers, keys (personal data)")
    p.add_argument(
        "--today",
        type=datetime.date.fromisoformat,
        help="date to re-run the checks at (default: the document's processedAt, in UTC+8)",
    )
    p.add_argument(
        "--min-prob",
        type=int,
        default=None,
        help=f"valueProb threshold (default: $REVIEW_MIN_PROB or {DEFAULT_MIN_PROB})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    min_prob = args.min_prob if args.min_prob is not None else _env_min_prob()
    ok = True
    for path in args.files:
        ok &= validate_file(path, show_values=args.show_values, today=args.today, min_prob=min_prob)
    return 0 if ok else 1


def _env_min_prob() -> int:
    try:
        return int(os.environ.get("REVIEW_MIN_PROB", DEFAULT_MIN_PROB))
    except ValueError:
        return DEFAULT_MIN_PROB


def load(path: Path) -> tuple[Any, str | None]:
    """(document, None) or (None, why it could not be read); the why never quotes the content."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read: {type(exc).__name__}"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not JSON (line {exc.lineno}, column {exc.colno})"


def validate_file(path: Path, *, show_values: bool, today: datetime.date | None, min_prob: int) -> bool:
    doc, why = load(path)
    if why is not None:
        print(f"{path}: INVALID {why}")
        return False
    errors = validate_document(doc, show_values=show_values)
    kind = doc.get("type") if isinstance(doc, dict) else None
    print(f"{path}: {'valid' if not errors else 'INVALID'} {kind if isinstance(kind, str) else 'document'}")
    for e in errors:
        print(f"  schema: {e}")
    if isinstance(doc, dict) and kind == "result":
        print_result(doc, show_values=show_values, today=today, min_prob=min_prob)
    elif isinstance(doc, dict) and kind == "error":
        print_error(doc, show_values=show_values)
    return not errors


def processing_day(doc: Mapping[str, Any]) -> datetime.date | None:
    """processedAt as a date in China (UTC+8), or None when absent or unreadable."""
    stamp = doc.get("processedAt")
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(CHINA).date()


def _verdict(passed: Any) -> str:
    if passed is None:
        return "n/a "
    return ("pass" if passed else "FAIL") if isinstance(passed, bool) else "??? "


def print_result(doc: Mapping[str, Any], *, show_values: bool, today: datetime.date | None, min_prob: int) -> None:
    decoded = doc.get("data")
    fields = decoded.get("data") if isinstance(decoded, Mapping) else None
    if not isinstance(fields, Mapping):
        print("  checks: not re-run (no data.data object)")
        return
    day = today or processing_day(doc) or datetime.datetime.now(CHINA).date()
    prism = decoded.get("prism_keyValueInfo") if isinstance(decoded, Mapping) else None
    fresh = review(fields, prism, today=day, min_prob=min_prob)
    print(f"  checks (re-run at {day.isoformat()}, min_prob {min_prob}):")
    for c in fresh["checks"]:
        print(f"    {_verdict(c.get('passed'))}  {c.get('code')}: {c.get('message')}")
    for u in fresh["normalized"]["unparsed"]:
        print(f"    unparsed  {u['field']}: {u['reason']}")
    reasons = ", ".join(fresh["reviewReasons"]) or "-"
    print(f"  needsReview: {str(fresh['needsReview']).lower()} ({reasons})")
    stored_flag, stored_reasons = doc.get("needsReview"), doc.get("reviewReasons")
    reviewed = doc.get("review")
    if isinstance(reviewed, Mapping):  # a person's verdict (permit-ocr review) replaces the function's
        accepted = ", ".join(map(str, reviewed.get("acceptedChecks") or [])) or "-"
        print(f"  reviewed at {reviewed.get('reviewedAt')}: {len(reviewed.get('changes') or [])} correction(s); "
              f"needsReview {json.dumps(stored_flag)}; failing checks accepted: {accepted}")
    elif stored_flag != fresh["needsReview"] or stored_reasons != fresh["reviewReasons"]:
        shown = ", ".join(map(str, stored_reasons)) if isinstance(stored_reasons, list) else "?"
        print(f"  stored verdict differs: needsReview {json.dumps(stored_flag)} ({shown or '-'})")
    if show_values:
        print_values(doc, fresh["normalized"])


def print_values(doc: Mapping[str, Any], normalized: Mapping[str, Any]) -> None:
    source = doc.get("source")
    if isinstance(source, Mapping):
        print(f"  source: {source.get('bucket')}/{source.get('key')}")
    for name in SHOWN:
        print(f"  {name}: {json.dumps(normalized.get(name), ensure_ascii=False)}")


def print_error(doc: Mapping[str, Any], *, show_values: bool) -> None:
    err = doc.get("error")
    if not isinstance(err, Mapping):
        return
    status = err.get("httpStatus")
    transient = "transient" if err.get("transient") is True else "permanent"
    print(f"  error: {err.get('code')} at stage {err.get('stage')}, {transient}, http {status}")
    print(f"  attempts: {doc.get('attempts')}, failedAt: {doc.get('failedAt')}")
    if show_values:  # messages and keys may quote the object key, which can carry a name
        source = doc.get("source")
        if isinstance(source, Mapping):
            print(f"  source: {source.get('bucket')}/{source.get('key')}")
        print(f"  message: {err.get('message')}")
