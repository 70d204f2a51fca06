"""Serve the review application on 127.0.0.1 with Werkzeug's threaded WSGI server (one person's browser)."""

from __future__ import annotations

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
    server = make_server(HOST, port, lambda env, start_response: [], threaded=True)
    real_port = server.server_port  # known once bound (port 0 = any free one): the Host check needs it
    server.app = create_app(store, allowed_hosts=(f"{HOST}:{real_port}", f"localhost:{real_port}"))
    thread = threading.Thread(target=server.serve_forever, name="review-page", daemon=True)
    thread.start()
    return server, thread, f"http://{HOST}:{real_port}/"


def serve(cfg: Config, credentials: Callable[[], Credentials], bucket: str, prefix: str, port: int) -> int:
    store = ReviewStore(cfg, credentials, bucket, prefix)
    server, thread, url = start(store, port)
    print(f"permit-ocr review: open {url} (127.0.0.1 only; Ctrl-C to stop)", flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.shutdown()
    return 0
