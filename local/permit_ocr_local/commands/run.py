"""``permit-ocr run``: the product's main job, offline. Starts the stand-ins with the OSS trigger of s.yaml
(same events and filters as in the cloud), uploads the samples with the OSS SDK, lets the trigger run the
real handler, waits for every outcome and prints a table. Results lie beside the images under --root.
--watch then keeps going: files dropped into <root>/<bucket>/<prefix> become upload events.

--backend engine|cascade and --shadow-rate R deploy the engine function on the FC stand-in beside it (the
function calls it through the FC SDK, as in the cloud; docs/selfhosted.md): the table then says which
recognizer answered, the paid OCR calls and the engine calls are counted, and shadow mode ends with
`permit-ocr shadow-report`'s table. The paid API's stand-in then answers with the truth files beside the
samples (the embedded engine would answer it as the engine function does).

Exit codes: 0 every image ended with a result · 1 an image ended with an error record or without an outcome
(the reason is printed), or there are no images · 130 interrupted with Ctrl-C (it says so in one line and
releases the claims it held, so the next run recognizes those images at once)."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from permit_ocr.config import DEFAULT_SUFFIXES, OCR_BACKENDS, load_config
from permit_ocr.layout import is_own_output, outputs_for

IMAGE_TYPES = tuple(DEFAULT_SUFFIXES.split(","))  # the function's default IMAGE_SUFFIXES


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="the main job offline", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("var/run"), metavar="FOLDER",
                   help="the stack's folder: buckets as plain folders, results beside the images (default var/run)")
    p.add_argument("--samples", type=Path, default=Path("samples"), metavar="FOLDER",
                   help="images to upload (default samples/)")
    p.add_argument("--s-yaml", type=Path, default=Path("s.yaml"), metavar="FILE",
                   help="deployment whose triggers and settings to emulate (default s.yaml)")
    p.add_argument("--ocr-backend", choices=tuple(BACKEND_WORDS), default=None,
                   help="what the paid API's stand-in answers with: engine, the embedded recognizer (default with "
                        "--backend api); truth, the truth files beside the samples; truth-or-engine (otherwise)")
    p.add_argument("--backend", choices=OCR_BACKENDS, default="api",
                   help="the function's OCR_BACKEND: api (default), engine or cascade (docs/selfhosted.md)")
    p.add_argument("--shadow-rate", type=_rate, default=0.0, metavar="R",
                   help="the function's SHADOW_RATE (0-1, with --backend api): the engine reads that share beside "
                        "the API, and a shadow report ends the run (default 0)")
    p.add_argument("--timeout", type=float, default=600, metavar="S",
                   help="seconds to wait for every outcome (default 600)")
    p.add_argument("--watch", action="store_true", help="keep serving; dropped files become upload events")
    p.set_defaults(func=run)


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}")
    return rate


def sample_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_TYPES)


def upload_bytes(path: Path, backend: str) -> bytes:
    data = path.read_bytes()
    truth_file = path.with_name(path.stem + ".truth.json")
    if backend != "engine" and truth_file.exists():  # the truth backend reads the truth carried by the image
        from permit_ocr_local.standins.ocr.truthmark import embed_truth

        truth = json.loads(truth_file.read_text())
        data = embed_truth(data, truth.get("data", truth))
    return data


def outcome_rows(root: Path, bucket: str, key: str, env: dict[str, str], since: str = "") -> list[dict[str, str]]:
    """The upload's table rows: one, or one per page of a PDF (its outcome is an index of its pages' outcomes);
    ``since`` (RFC 3339) marks outcomes an earlier run wrote (the upload was a duplicate)."""
    out = outputs_for(load_config(env), bucket, key)  # where the function writes, from its own layout
    result, error = root / out.bucket / out.result_key, root / out.bucket / out.error_key
    if result.exists() and (index := json.loads(result.read_text())).get("type") == "pages":
        return [_row(f"{Path(key).name} p{page['page']}", root / out.bucket / page["key"], None, since)
                for page in index["pages"]]
    return [_row(Path(key).name, result, error, since)]


def _row(name: str, result: Path, error: Path | None, since: str) -> dict[str, str]:
    """A row from a stored result or error record (``result`` may be either: a page's outcome)."""
    row = {"file": name, "kind": "", "name": "", "number": "", "valid": "", "status": "missing", "seconds": "",
           "by": ""}
    doc = json.loads(result.read_text()) if result.exists() else None
    if doc is None and error is not None and error.exists():
        doc = json.loads(error.read_text())
    if doc is not None and doc.get("type") == "result":
        data = doc.get("data", {}).get("data", {})
        norm = doc.get("normalized") or {}
        row.update(kind=str(norm.get("kind") or ""), name=f"{data.get('nameCn', '')} {data.get('nameEn', '')}",
                   number=f"{data.get('permitNumber', '')} {data.get('issueCount', '')}".strip(),
                   valid=str(data.get("validPeriod", "")),
                   status=("review" if doc.get("needsReview") else "ok")
                   + (" (earlier run)" if since and str(doc.get("processedAt", "")) < since else ""),
                   seconds=f"{doc['ocr']['latencyMs'] / 1000:.2f}", by=answered_by(doc["ocr"]))
    elif doc is not None:
        row.update(status=f"error: {doc['error']['code']}")
    return row


def review_hint(rows: list[dict[str, str]], root: Path, bucket: str, prefix: str, sinks: str) -> str:
    """How to open the review page (permit-ocr review) for the results flagged needsReview; "" when none is."""
    flagged = sum(r["status"].startswith("review") for r in rows)
    if not flagged:
        return ""
    opt = "" if sinks == "oss" else f" --sinks {sinks}"
    steps = [(f". .venv/bin/activate && eval \"$(permit-ocr stack --root {root}{opt} --detach)\"", "serve it again"),
             (f"permit-ocr review --bucket {bucket} --prefix {prefix}", "then open http://127.0.0.1:8765/"),
             (f"permit-ocr stack --root {root} --stop", "when done")]
    width = max(len(cmd) for cmd, _ in steps)
    lines = "".join(f"  {cmd.ljust(width)}   # {why}\n" for cmd, why in steps)
    return f"\n{flagged} result(s) need a person. Review them in the browser (127.0.0.1 only):\n{lines}"


def answered_by(ocr: dict[str, Any]) -> str:
    """Which recognizer's answer a result holds: api, engine, or api after the engine's doubt (a cascade)."""
    backend = str(ocr.get("backend") or "api")
    escalated = (ocr.get("cascade") or {}).get("escalated")
    return "api (engine unsure)" if escalated else backend


def print_table(rows: list[dict[str, str]], by: bool = False) -> None:
    cols = ["file", "kind", "name", "number", "valid", "status", "seconds", *(["by"] if by else [])]
    widths = {c: max(_width(c), *(_width(r[c]) for r in rows)) for c in cols}
    line = "  ".join(_pad(c, widths[c]) for c in cols)
    print(line)
    print("  ".join("-" * widths[c] for c in cols))
    for r in rows:
        print("  ".join(_pad(r[c], widths[c]) for c in cols))


def _width(s: str) -> int:  # CJK characters take two terminal columns
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)


def _pad(s: str, width: int) -> str:
    return s + " " * (width - _width(s))


def run(args: argparse.Namespace) -> int:
    from permit_ocr import log
    from permit_ocr_local.fcruntime.interrupt import interrupted

    if args.ocr_backend is None:  # the paid API's stand-in differs from the engine function when both answer
        args.ocr_backend = "engine" if args.backend == "api" and not args.shadow_rate else "truth-or-engine"
    if args.shadow_rate and args.backend != "api":
        print("permit-ocr run: --shadow-rate goes with --backend api (the engine already answers every upload with "
              f"{args.backend})", file=sys.stderr)
        return 2
    if not args.samples.is_dir() or not sample_files(args.samples):
        what = "no folder" if not args.samples.is_dir() else "no images in"
        print(f"permit-ocr run: {what} {args.samples} (--samples: a folder of {', '.join(IMAGE_TYPES)} files)",
              file=sys.stderr)
        return 1

    args.root.mkdir(parents=True, exist_ok=True)
    log_path = args.root / "function.log"
    log_file = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - open while the function runs
    log.use_stream(log_file)  # the function's JSON logs go to a file, the table to the terminal
    try:
        return _run(args, log_path, log_file)
    except KeyboardInterrupt:  # before the stack served anything: nothing to release
        interrupted("run")
    finally:
        log.use_stream(None)


def _run(args: argparse.Namespace, log_path: Path, log_file: Any) -> int:
    from permit_ocr_local.fcruntime.function import LocalFunction
    from permit_ocr_local.fcruntime.interrupt import interrupted

    files = sample_files(args.samples)
    loading = " — loading its models, about 5 s" if args.ocr_backend != "truth" else ""
    print(f"starting the local stack under {args.root} (OCR: {BACKEND_WORDS[args.ocr_backend]}{loading}) ...",
          flush=True)
    selfhosted = args.backend != "api" or args.shadow_rate > 0
    if selfhosted:
        print(f"the function: OCR_BACKEND={args.backend}, SHADOW_RATE={args.shadow_rate:g}; the engine function on "
              "the FC stand-in (the embedded engine, loading its models)", flush=True)
    overrides = {"OCR_BACKEND": args.backend, "SHADOW_RATE": f"{args.shadow_rate:g}"} if selfhosted else {}
    with log_file, LocalFunction(args.s_yaml, args.root, ocr_backend=args.ocr_backend, env_overrides=overrides,
                                 engine="engine" if selfhosted else None) as fn:
        keys: list[str] = []
        try:
            fn.preload()
            return _upload_and_report(args, fn, files, keys, log_path)
        except KeyboardInterrupt:
            def stop() -> None:  # no new attempt may start (and claim) while the held ones are released
                assert fn.invoker is not None
                fn.invoker.abort()
                log_file.flush()

            interrupted("run", before=stop, done=_done_words(args.root, fn, keys))
    return 1  # unreachable: interrupted() exits


def _upload_and_report(args: argparse.Namespace, fn: Any, files: list[Path], keys: list[str],
                       log_path: Path) -> int:
    dep = fn.deployment
    client = _oss_client(fn.env())
    t0 = time.monotonic()
    since = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    etags: dict[str, str] = {}
    for path in files:
        key = f"{dep.prefix}{path.name}"
        data = upload_bytes(path, args.ocr_backend)
        _put(client, dep.bucket, key, data)
        keys.append(key)
        etags[key] = hashlib.md5(data).hexdigest().upper()
    print(f"uploaded {len(keys)} image(s) to oss://{dep.bucket}/{dep.prefix} — waiting for the function ...",
          flush=True)
    idle = _wait(fn, args.root, dep.bucket, keys, args.timeout)
    rows_of = {k: outcome_rows(args.root, dep.bucket, k, fn.env(), since) for k in keys}
    rows = [row for k in keys for row in rows_of[k]]
    print()
    print_table(rows, by=fn.engine is not None)
    out_dir = args.root / (fn.env().get("OUTPUT_BUCKET") or dep.bucket) / (fn.env().get("OUTPUT_PREFIX", "")
                                                                         + dep.prefix)
    print(f"\n{len(keys)} image(s) in {time.monotonic() - t0:.1f} s; results in {out_dir}; "
          f"function logs in {log_path}")
    for key in keys:
        if rows_of[key][0]["status"] == "missing":
            why = missing_reason(args.root, fn.env(), dep.bucket, key, etags[key], time.time())
            print(f"permit-ocr run: {key}: no outcome: {why}", file=sys.stderr)
    _calls_summary(args, fn)
    print(review_hint(rows, args.root, dep.bucket, dep.prefix, fn.env().get("SINKS", "oss")), end="")
    if args.watch:
        _watch(fn, args.root / dep.bucket, dep.prefix)
    ok = idle and all(not r["status"].startswith(("error", "missing")) for r in rows)
    return 0 if ok else 1


BACKEND_WORDS = {"engine": "the embedded engine", "truth": "the truth files beside the samples",
                 "truth-or-engine": "the truth files beside the samples; converted uploads, the embedded engine"}


def _calls_summary(args: argparse.Namespace, fn: Any) -> None:
    """Paid calls (the OCR stand-in's billing ledger); with the engine function its calls (the FC stand-in's
    invocation log) and, in shadow mode, the comparison records summed up."""
    billed = fn.stack.ocr.service.stats.get("billed", 0)
    engine = (f"; engine function calls: {fn.engine_calls()} (the FC stand-in's InvokeFunction log)"
              if fn.engine is not None else "")
    print(f"paid OCR API calls: {billed} (billed by the API's stand-in){engine}")
    if args.shadow_rate:
        from permit_ocr.credentials import resolve
        from permit_ocr.storage import Storage
        from permit_ocr_local.tools.shadow import read_records, render, summarize

        env = fn.env()
        cfg = load_config(env)
        records = read_records(Storage(cfg, lambda: resolve(env)), cfg.output_bucket_for(fn.deployment.bucket), None)
        print(f"\nshadow report (`permit-ocr shadow-report --bucket {fn.deployment.bucket}`; the API's stand-in "
              f"answers with {BACKEND_WORDS[args.ocr_backend]}):")
        print(render(summarize(records)))


def _wait(fn: Any, root: Path, bucket: str, keys: list[str], timeout_s: float) -> bool:
    """Until the function is idle, with a sign of life: how many images have their outcome (in place on a
    terminal, else a line every few seconds when the count moved)."""
    tty = sys.stdout.isatty()
    end = time.monotonic() + timeout_s
    shown, last_line = -1, time.monotonic()
    while True:
        idle = fn.wait_idle(min(0.5, max(0.0, end - time.monotonic())))
        done = sum(_has_outcome(root, fn.env(), bucket, k) for k in keys)
        if tty and done != shown:
            print(f"\r  {done}/{len(keys)} done", end="", flush=True)
            shown = done
        elif not tty and done != shown and (time.monotonic() - last_line >= 3 or idle):
            if shown >= 0 or not idle:
                print(f"  {done}/{len(keys)} done", flush=True)
            shown, last_line = done, time.monotonic()
        if idle or time.monotonic() >= end:
            if tty:
                print()
            return idle


def _has_outcome(root: Path, env: dict[str, str], bucket: str, key: str) -> bool:
    out = outputs_for(load_config(env), bucket, key)
    return (root / out.bucket / out.result_key).exists() or (root / out.bucket / out.error_key).exists()


def _done_words(root: Path, fn: Any, keys: list[str]) -> str:
    if not keys:
        return "nothing was uploaded"
    done = sum(_has_outcome(root, fn.env(), fn.deployment.bucket, k) for k in keys)
    return f"{done} of {len(keys)} image(s) have their outcome"


def missing_reason(root: Path, env: dict[str, str], bucket: str, key: str, etag: str, now: float) -> str:
    """Why an uploaded image has neither a result nor an error record: its version's claim (the last marker of
    its chain) says whether an attempt still holds it, e.g. one of an earlier run that was killed."""
    from permit_ocr.layout import marker_key
    from permit_ocr.ledger import parse_holder

    out = outputs_for(load_config(env), bucket, key)
    holder = None
    for generation in range(64):
        marker = root / out.bucket / marker_key(bucket, key, etag, generation)
        if not marker.is_file():
            break
        holder = parse_holder(marker.read_bytes())
    if holder is not None and holder.live(now):
        until = datetime.datetime.fromtimestamp(holder.expires_at).strftime("%H:%M:%S")
        return f"another attempt holds its claim until {until} (an earlier run that was killed?): run again then"
    return f"the function gave up on it; its log lines are in {root / 'function.log'}"


def _oss_client(env: dict[str, str]) -> Any:
    import alibabacloud_oss_v2 as oss

    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        env["ALIBABA_CLOUD_ACCESS_KEY_ID"], env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"], env["ALIBABA_CLOUD_SECURITY_TOKEN"])
    cfg.region = env["OSS_REGION"]
    cfg.endpoint = env["OSS_ENDPOINT"]
    return oss.Client(cfg)


def _put(client: Any, bucket: str, key: str, data: bytes) -> None:
    import alibabacloud_oss_v2 as oss

    client.put_object(oss.PutObjectRequest(bucket=bucket, key=key, body=data))


def _watch(fn: Any, bucket_dir: Path, prefix: str) -> None:
    """Files dropped by hand are objects already (the stand-in stores plain files); announce them as uploads."""
    from permit_ocr_local.fcruntime.interrupt import interrupted
    from permit_ocr_local.fcruntime.trigger import OssTrigger, fires
    from permit_ocr_local.standins.oss.state import etag_of

    trigger = OssTrigger(fn.deployment.triggers, fn.invoker, fn.stack.options.region)
    seen: dict[Path, tuple[int, int]] = {p: _sig(p) for p in bucket_dir.rglob("*") if p.is_file()}
    print(f"watching {bucket_dir / prefix} — drop images there; Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(1.0)
            for p in sorted(bucket_dir.rglob("*")):
                if not p.is_file() or p.name.startswith(".") or seen.get(p) == _sig(p):
                    continue
                sig = _sig(p)
                time.sleep(0.2)
                if _sig(p) != sig:  # still being written; next round
                    continue
                key = p.relative_to(bucket_dir).as_posix()
                if key.startswith(".") or is_own_output(key, load_config(fn.env())):
                    seen[p] = sig  # the function's outputs and bookkeeping: written here, not dropped
                    continue
                data = p.read_bytes()
                if not any(fires(t, bucket_dir.name, key, "ObjectCreated:PutObject") for t in fn.deployment.triggers):
                    seen[p] = sig
                    print(f"{key}: no trigger fires for it ({watch_words(key, fn.deployment.triggers)})", flush=True)
                    continue
                print(f"{key}: uploaded; recognizing ...", flush=True)
                trigger.on_put(bucket_dir.name, key, etag_of(data), len(data), "ObjectCreated:PutObject", "")
                fn.wait_idle(300)
                seen = {**seen, **{q: _sig(q) for q in _outputs_of(bucket_dir, key, fn.env())}, p: _sig(p)}
                for row in outcome_rows(bucket_dir.parent, bucket_dir.name, key, fn.env()):
                    detail = " ".join(v for v in (row["kind"], row["name"].strip(), row["number"]) if v)
                    where = key + row["file"][len(Path(key).name):]  # a PDF's page: "<key> p2"
                    print(f"{where}: {row['status']}" + (f" ({detail})" if detail else ""), flush=True)
    except KeyboardInterrupt:
        assert fn.invoker is not None
        invoker = fn.invoker
        interrupted("run", before=invoker.abort, what="stopped watching", code=0)


def watch_words(key: str, triggers: Any) -> str:
    """Why no trigger of s.yaml fires for a dropped file, in words (the first reason that applies)."""
    prefixes = sorted({t.prefix for t in triggers})
    if not any(key.startswith(pfx) for pfx in prefixes):
        return f"it is outside the trigger prefix {' or '.join(prefixes)}"
    suffixes = sorted({t.suffix for t in triggers if t.suffix})
    if suffixes:
        return f"its name does not end in {', '.join(suffixes)} (suffixes are case-sensitive, as in OSS)"
    return "s.yaml's triggers do not match it"


def _outputs_of(bucket_dir: Path, key: str, env: dict[str, str]) -> list[Path]:
    out = outputs_for(load_config(env), bucket_dir.name, key)
    root = bucket_dir.parent
    return [q for q in (root / out.bucket / out.result_key, root / out.bucket / out.error_key) if q.is_file()]


def _sig(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_size, st.st_mtime_ns
