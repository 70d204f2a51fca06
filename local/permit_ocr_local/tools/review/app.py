"""The review page: a Flask application over a ReviewStore, for one person's browser on 127.0.0.1.

Privacy and safety, because anything on the web can make a browser send requests to 127.0.0.1:
- the Host header must name this server (a DNS-rebinding page cannot read it under another name);
- every POST needs the session's token and, when the browser sends one, an Origin of this server;
- a strict Content-Security-Policy: scripts and styles from this server only, images from here and the OSS
  endpoint that signed the URL, no frames, no form target elsewhere;
- no request logging (URLs hold object keys, which may hold names); pages are never cached.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import urllib.parse
from collections.abc import Mapping
from typing import Any

from flask import Flask, abort, flash, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from permit_ocr.errors import StorageError
from permit_ocr.normalize import FIELDS

from . import rules
from .store import Item, Refused, ReviewStore

SKIP_LIMIT = 1000  # skipped keys remembered per session (in this process, not the 4 KB cookie)


def create_app(store: ReviewStore, *, allowed_hosts: tuple[str, ...]) -> Flask:
    """``allowed_hosts``: the ``host:port`` names this server answers to (127.0.0.1:PORT, localhost:PORT)."""
    app = Flask(__name__)
    app.secret_key = secrets.token_bytes(32)  # per process: a restart ends every session
    # cookies ignore ports: a name per port keeps two review pages (or another local app) from clobbering it
    port = allowed_hosts[0].rpartition(":")[2]
    app.config.update(SESSION_COOKIE_NAME=f"permit_ocr_review_{port}", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", MAX_CONTENT_LENGTH=64 * 1024)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # the reviewers' words: Chinese and English labels, checks as sentences, this machine's local time
    app.jinja_env.filters.update(local_time=rules.local_time, reason_words=rules.reason_words,
                                 check_sentence=rules.check_sentence, field_label=rules.field_label)
    origins = {f"http://{h}" for h in allowed_hosts}
    skips: dict[str, list[str]] = {}  # session id -> result keys skipped, in order

    def skipped() -> list[str]:
        return skips.setdefault(str(session.setdefault("sid", secrets.token_urlsafe(16))), [])

    @app.before_request
    def guard() -> Response | None:
        if request.host not in allowed_hosts:
            abort(421)  # misdirected: another name for 127.0.0.1 (DNS rebinding)
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin is not None and origin not in origins:
                abort(403)
            token = session.get("token")
            if not token or not hmac.compare_digest(str(token), request.form.get("token", "")):
                abort(403)
        g.img_origin = ""
        return None

    @app.after_request
    def headers(resp: Response) -> Response:
        img = " ".join(filter(None, ("'self'", g.get("img_origin", ""))))
        resp.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'self'; style-src 'self'; img-src {img}; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        # the OSS request for the image never learns the page's URL; same-origin keeps Origin on our own POSTs
        # (under no-referrer Chromium sends "Origin: null", which the guard refuses)
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.errorhandler(StorageError)
    def storage_failed(err: StorageError) -> tuple[str, int]:
        return render_template("error.html", message=f"OSS did not answer as expected ({err.code}); nothing was "
                               "changed. Try again in a moment."), 502

    @app.context_processor
    def common() -> dict[str, Any]:
        if "token" not in session:
            session["token"] = secrets.token_urlsafe(32)
        return {"token": session["token"], "reviewer": session.get("reviewer"), "bucket": store.bucket,
                "prefix": store.prefix}

    @app.get("/favicon.ico")
    def favicon() -> tuple[str, int]:
        return "", 204  # none: a 404 here would be the only console error

    @app.get("/")
    def start() -> str | Response:
        if session.get("reviewer"):
            return redirect(url_for("queue"))
        return render_template("start.html")

    @app.post("/start")
    def begin() -> str | Response | tuple[str, int]:
        try:
            session["reviewer"] = rules.clean_reviewer(request.form.get("reviewer", ""))
        except rules.BadInput as err:
            return render_template("start.html", problem=str(err)), 400
        skipped().clear()
        return redirect(url_for("queue"))

    @app.get("/queue")
    def queue() -> str | Response:
        if not session.get("reviewer"):
            return redirect(url_for("start"))
        entries = store.queue()
        check = request.args.get("check") or None
        shown = rules.ordered(entries, check)
        return render_template("queue.html", entries=shown, total=len(entries), counts=rules.reason_counts(entries),
                               check=check, skipped=set(skipped()))

    @app.get("/next")
    def next_item() -> Response:
        """The oldest entry not skipped in this session (under the filter), or the queue when none is left."""
        check = request.args.get("check") or None
        after = request.args.get("after", "")
        entries = rules.ordered(store.queue(), check)
        nxt = rules.next_after(entries, after, frozenset(skipped()))
        if nxt is None:
            flash("the queue is empty" if not entries else "no more results to review under this filter "
                  "(skipped ones are still in the queue)")
            return redirect(url_for("queue", check=check))
        return redirect(url_for("item", key=nxt.result_key, check=check))

    @app.get("/item")
    def item() -> str | Response | tuple[str, int]:
        if not session.get("reviewer"):
            return redirect(url_for("start"))
        key = request.args.get("key", "")
        found = store.load(key) if key else None
        if found is None:
            return render_template("error.html", message="no result document at this key"), 404
        return _page(found, request.args.get("check"), dict(rules.fields_of(found.doc)))

    @app.post("/item")
    def save() -> str | Response | tuple[str, int]:
        key = request.form.get("key", "")
        check = request.form.get("check") or None
        if not session.get("reviewer"):
            return redirect(url_for("start"))
        if request.form.get("action") == "skip":
            keys = skipped()
            keys[:] = [*[k for k in keys if k != key][-SKIP_LIMIT + 1:], key]
            return redirect(url_for("next_item", after=key, check=check))
        submitted = {f: request.form[f] for f in FIELDS if f in request.form}
        try:
            saved = store.save(key, request.form.get("etag", ""), str(session["reviewer"]), submitted)
        except rules.BadInput as err:
            found = store.load(key)
            if found is None:
                return render_template("error.html", message="no result document at this key"), 404
            return _page(found, check, {**rules.fields_of(found.doc), **submitted}, problem=str(err)), 400
        except Refused as err:
            found = store.load(key)
            if found is None:
                return render_template("error.html", message=str(err)), 409
            return _page(found, check, rules.fields_of(found.doc), refused=str(err), refused_reason=err.reason), 409
        flash(_saved_words(saved.changes, saved.accepted, saved.publish_error, store.publishes))
        return redirect(url_for("next_item", after=key, check=check))

    def _page(found: Item, check: str | None, values: Mapping[str, str], **extra: Any) -> str:
        if found.image_url:
            g.img_origin = _origin(found.image_url)
        size = rules.image_size(found.doc)
        conf = rules.confidences(found.doc)
        failed = rules.failed_checks(found.doc)
        flagged = {f for c in failed for f in c.get("fields") or []} | _fields_named(failed)
        corrected = rules.corrected_fields(found.doc)  # their OCR confidence is about a reading now replaced
        rows = [{"name": f, "value": values.get(f, ""), "conf": conf[f], "flagged": f in flagged,
                 "label": rules.field_label(f), "corrected": f in corrected} for f in FIELDS]
        return render_template("item.html", item=found, rows=rows, failed=failed, boxes=rules.boxes(found.doc),
                               size=size, check=check, reviewable=found.image_state == "current"
                               and rules.needs_review(found.doc), **extra)

    return app


def _origin(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


def _fields_named(failed: list[dict[str, Any]]) -> set[str]:
    """Fields a check is about, from its code (``validPeriod.span`` -> validPeriod; ``number.*`` -> the number)."""
    aliases = {"number": "permitNumber", "kind": "permitType"}
    out = set()
    for c in failed:
        head = str(c.get("code", "")).split(".")[0]
        name = aliases.get(head, head)
        if name in FIELDS:
            out.add(name)
    return out


def _saved_words(changes: list[dict[str, str]], accepted: list[str], publish_error: str | None,
                 publishes: bool) -> str:
    what = f"saved with {len(changes)} correction(s)" if changes else "approved as read"
    if accepted:
        what += f"; still failing, accepted by you: {', '.join(accepted)}"
    if publishes:
        what += ("; result-reviewed message published" if publish_error is None
                 else f"; the MNS message failed ({publish_error}) and stays owed on the stored result")
    return what
