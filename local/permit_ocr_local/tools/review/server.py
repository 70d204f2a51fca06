"""Serve the review application on 127.0.0.1 with Werkzeug's threaded WSGI server (one person's browser)."""

from __future__ import annotations

import contextlib
import errno
import io
import sys
import threading
from collections.abc import Callable

from werkzeug.serving import BaseWSGIServer, make_server

from permit_ocr.config import Config
from permit_ocr.credentials import Credentials

from .app import create_app
from .store import ReviewStore

HOST = "127.0.0.1"  # never another interface: the page shows personal data and has no login


def start(store: ReviewStore, port: int = 0) -> tuple[BaseWSGIServer, threading.Thread, str]:
    """Start serving in a thread; returns the server, its thread and the page's URL."""
    try:  # Werkzeug reports a taken port in lines of its own and exits: the caller says it in one
        with contextlib.redirect_stderr(io.StringIO()):
            server = make_server(HOST, port, lambda env, start_response: [], threaded=True)
    except SystemExit as exc:
        raise OSError(errno.EADDRINUSE, "address in use") from exc
    real_port = server.server_port  # known once bound (port 0 = any free one): the Host check needs it
    server.app = create_app(store, allowed_hosts=(f"{HOST}:{real_port}", f"localhost:{real_port}"))
    thread = threading.Thread(target=server.serve_forever, name="review-page", daemon=True)
    thread.start()
    return server, thread, f"http://{HOST}:{real_port}/"


def serve(cfg: Config, credentials: Callable[[], Credentials], bucket: str, prefix: str, port: int) -> int:
    store = ReviewStore(cfg, credentials, bucket, prefix)
    try:
        server, thread, url = start(store, port)
    except OSError:  # the port is taken (another review page?)
        print(f"permit-ocr review: port {port} on {HOST} is taken (another review page?); pass --port 0 for any "
              "free port", file=sys.stderr)
        return 2
    print(f"permit-ocr review: open {url} (127.0.0.1 only; Ctrl-C to stop)", flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.shutdown()
    return 0
