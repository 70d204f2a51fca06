"""Measurement helpers for bench/run.py, and the two child processes it starts:

    python bench/_measure.py serve ROOT            the local stack (OSS/OCR/MNS stand-ins) in its own process,
                                                   driven by JSON lines on stdin (so its CPU and memory never
                                                   count against the handler being measured)
    python bench/_measure.py invoke ENTRY EVENT    one cold FC-style invocation (ENTRY: index | naive), printing
                                                   its peak RSS; the stack's env comes in the environment

Top-level imports are stdlib only and light: the ``invoke`` child's peak RSS must be the handler's, not ours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

REPO = Path(__file__).resolve().parent.parent
FUNCTION_DIR = REPO / "function"
BENCH_DIR = REPO / "bench"
RESULT_MARK = "BENCH_RESULT "


# -- statistics ------------------------------------------------------------------------------------------------

def median(values: Iterable[float]) -> float:
    vals = list(values)
    return statistics.median(vals) if vals else float("nan")


def dir_size(path: Path) -> int:
    """Apparent size of every regular file under ``path`` (what the unzipped code package occupies)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# -- the stack in another process ---------------------------------------------------------------------------------

class StackProcess:
    """The LocalStack running in a child process; ``call`` sends one command and returns its JSON answer."""

    def __init__(self, root: Path) -> None:
        self._proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "serve", str(root)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        hello = self._read()
        self.env: dict[str, str] = hello["env"]
        self.bucket: str = hello["bucket"]
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the stack process died (see stderr)")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"stack: {answer['error']}")
        return answer

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None
        with self._lock:
            self._proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
            self._proc.stdin.flush()
            return self._read()

    def put(self, key: str, path: Path) -> tuple[str, int]:
        """Store a file as an object without HTTP (no client work in the measuring process)."""
        r = self.call("put", key=key, path=str(path))
        return r["etag"], r["size"]

    def close(self) -> None:
        if self._proc.poll() is None:
            with self._lock:
                assert self._proc.stdin is not None
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def __enter__(self) -> StackProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(root: Path) -> None:
    from permit_ocr_local.fcruntime.enginefn import serve_engine
    from permit_ocr_local.fcruntime.stack import DEFAULT_BUCKET, LocalStack, StackOptions
    from permit_ocr_local.standins.faults import FaultPlan

    plan = FaultPlan(seed=1)
    stack = LocalStack(StackOptions(root=root, faults=plan)).start()
    engine = serve_engine(stack.keyring, "truth")  # unused unless OCR_BACKEND asks for it (the engine rows)
    log: list[dict[str, Any]] = []
    log_lock = threading.Lock()
    for name, server in (("oss", stack.oss), ("ocr", stack.ocr), ("mns", stack.mns)):
        _record_requests(name, server.service, log, log_lock)  # type: ignore[union-attr]
    out = sys.stdout
    out.write(json.dumps({"env": {**stack.env(), **engine.env(), "ENGINE_TIMEOUT_MS": "10000"},
                          "bucket": DEFAULT_BUCKET}) + "\n")
    out.flush()
    assert stack.oss is not None
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.pop("op")
        answer: dict[str, Any] = {}
        try:
            if op == "put":
                data = Path(cmd["path"]).read_bytes()
                meta = stack.oss.service.state.put(DEFAULT_BUCKET, cmd["key"], data, content_type="image/png")
                answer = {"etag": meta.etag, "size": meta.size}
            elif op == "log":  # the requests seen since the last "log"; cleared on read
                with log_lock:
                    answer = {"log": list(log)}
                    log.clear()
            elif op == "slow":  # every OCR request answered slow_s late: a model of the service's latency
                plan.set(cmd["service"], slow=1.0, slow_s=float(cmd["slow_s"]))
            elif op == "fast":
                plan.rates.clear()
            else:
                answer = {"error": f"unknown op {op}"}
        except Exception as exc:  # answer, never hang the bench
            answer = {"error": repr(exc)}
        out.write(json.dumps(answer) + "\n")
        out.flush()
    engine.stop()
    stack.stop()


def _request_kind(service: str, method: str, path: str, query: str, headers: dict[str, list[str]]) -> str:
    """A name for what a request does, for the per-image request table."""
    if service != "oss":
        return {"ocr": "OCR call", "mns": "MNS publish"}.get(service, service)
    if "list-type=" in query:
        return "OSS list"
    if method == "PUT":
        return "OSS put (create-only)" if headers.get("x-oss-forbid-overwrite") else "OSS put"
    if method == "GET" and headers.get("range"):
        return "OSS get (range)"
    return f"OSS {method.lower()}"


def _record_requests(name: str, service: Any, log: list[dict[str, Any]], lock: threading.Lock) -> None:
    """Wrap ``service.handle`` (instance attribute) to log each request's shape; injected faults never get here."""
    inner = service.handle

    def handle(request: Any) -> Any:
        response = inner(request)
        q = request.raw_query
        entry = {"service": name, "method": request.method, "raw_path": request.raw_path,
                 "range": request.header("Range"), "body": len(request.body), "status": response.status,
                 "content_type": request.header("Content-Type"),
                 "presigned": "Signature=" in q or "x-oss-signature=" in q,  # made by the OCR service, not us
                 "url_mode": "Url=" in q, "query": q,
                 "kind": _request_kind(name, request.method, request.raw_path, q, request.header_map())}
        with lock:
            log.append(entry)
        return response

    service.handle = handle


def client_requests(log: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The round trips the function itself made (the OCR service's fetch of the signed URL is not one)."""
    return [e for e in log if not e["presigned"]]


# -- the floor: the same round trips from a bare HTTP client ------------------------------------------------------

@dataclass(frozen=True)
class RawRequest:
    host: str  # host:port
    method: str
    target: str  # path?query
    headers: dict[str, str]
    body: bytes


class Signer:
    """Just enough signing for the floor, computed BEFORE the timed loop: OSS V1 query signatures (no nonce,
    reusable until Expires) and ACS3-HMAC-SHA256 headers (one fresh nonce per OCR request)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.ak = env["ALIBABA_CLOUD_ACCESS_KEY_ID"]
        self.sk = env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]
        self.token = env.get("ALIBABA_CLOUD_SECURITY_TOKEN", "")
        self.oss_host = urlsplit(env["OSS_ENDPOINT"]).netloc
        self.ocr_host = env["OCR_ENDPOINT"]

    def oss_target(self, method: str, bucket: str, key: str, content_type: str = "", expires_s: int = 900) -> str:
        expires = str(int(time.time()) + expires_s)
        resource = f"/{bucket}/{key}?security-token={self.token}"  # the STS token is a signed sub-resource
        string_to_sign = f"{method}\n\n{content_type}\n{expires}\n{resource}"
        sig = base64.b64encode(hmac.new(self.sk.encode(), string_to_sign.encode(), hashlib.sha1).digest()).decode()
        query = urlencode({"OSSAccessKeyId": self.ak, "Expires": expires, "Signature": sig,
                           "security-token": self.token})
        return f"/{bucket}/{quote(key)}?{query}"

    def ocr_request(self, query: dict[str, str], body: bytes) -> RawRequest:
        payload_hash = hashlib.sha256(body).hexdigest()
        headers = {
            "host": self.ocr_host, "x-acs-action": "RecognizeExitEntryPermitToMainland",
            "x-acs-version": "2021-07-07", "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "x-acs-signature-nonce": secrets.token_hex(16), "x-acs-content-sha256": payload_hash,
            "x-acs-accesskey-id": self.ak, "accept": "application/json",
        }
        if self.token:
            headers["x-acs-security-token"] = self.token
        if body:
            headers["content-type"] = "application/octet-stream"
        names = sorted(headers)
        canonical_query = "&".join(f"{k}={quote(v, safe='~')}" for k, v in sorted(query.items()))
        canonical = "\n".join(["POST", "/", canonical_query, "".join(f"{n}:{headers[n].strip()}\n" for n in names),
                               ";".join(names), payload_hash])
        string_to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        sig = hmac.new(self.sk.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"ACS3-HMAC-SHA256 Credential={self.ak},SignedHeaders={';'.join(names)},"
                                    f"Signature={sig}")
        target = "/" + ("?" + urlencode(query) if query else "")
        return RawRequest(self.ocr_host, "POST", target, headers, body)


FLOOR_PREFIX = "bench-floor/"  # the floor's HEAD/PUT/DELETE go here, so they never touch the handler's outputs


def floor_requests(made: Sequence[dict[str, Any]], signer: Signer, bucket: str, image_key: str,
                   image: bytes) -> list[RawRequest]:
    """Rebuild what the handler sent (count, method, size, range) as precomputed raw requests."""
    out: list[RawRequest] = []
    for e in made:
        if e["service"] == "oss" and "list-type=" in e["query"]:
            listing = "&".join(p for p in e["query"].split("&") if p.split("=")[0] in ("list-type", "prefix",
                                                                                        "max-keys", "encoding-type"))
            out.append(RawRequest(signer.oss_host, "GET", signer.oss_target("GET", bucket, "") + "&" + listing,
                                  {"Host": signer.oss_host}, b""))
        elif e["service"] == "oss":
            key = e["raw_path"].split("/", 2)[2]
            method = e["method"]
            if method != "GET":
                key = FLOOR_PREFIX + key
            ctype = e["content_type"] if method == "PUT" else ""
            headers = {"Host": signer.oss_host}
            if e["range"]:
                headers["Range"] = e["range"]
            if ctype:
                headers["Content-Type"] = ctype
            body = b"x" * e["body"]
            out.append(RawRequest(signer.oss_host, method, signer.oss_target(method, bucket, key, ctype),
                                  headers, body))
        elif e["service"] == "ocr":
            if e["url_mode"]:
                url = f"http://{signer.oss_host}{signer.oss_target('GET', bucket, image_key)}"
                out.append(signer.ocr_request({"Url": url}, b""))
            else:
                out.append(signer.ocr_request({}, image))
        else:
            raise RuntimeError(f"the floor does not model {e['service']} requests")
    return out


class BareClient:
    """http.client with one kept-alive connection per host, like the SDKs' pools."""

    def __init__(self) -> None:
        self._conns: dict[str, http.client.HTTPConnection] = {}

    def send(self, r: RawRequest) -> int:
        for attempt in (0, 1):
            conn = self._conns.get(r.host)
            if conn is None:
                conn = self._conns[r.host] = http.client.HTTPConnection(r.host, timeout=30)
            try:
                conn.request(r.method, r.target, body=r.body or None, headers=r.headers)
                resp = conn.getresponse()
                resp.read()
                return resp.status
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                del self._conns[r.host]
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()


# -- timing -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float  # process CPU: the stack lives in another process, so this is the client side only
    thread_cpu_s: float  # the calling thread only


def timed(fn: Callable[[], Any]) -> tuple[Timing, Any]:
    w, c, t = time.perf_counter(), time.process_time(), time.thread_time()
    result = fn()
    return Timing(time.perf_counter() - w, time.process_time() - c, time.thread_time() - t), result


def time_subprocess(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


# -- images ---------------------------------------------------------------------------------------------------------

def truth_png(size: tuple[int, int] = (928, 626), noise: bool = False) -> bytes:
    """A PNG carrying the sample truth; ``noise`` makes it incompressible (1900x1800 is ~10 MB)."""
    import io

    from PIL import Image

    from permit_ocr_local.standins.ocr.truthmark import embed_truth

    sys.path.insert(0, str(REPO / "tests"))
    from support import SAMPLE_TRUTH

    if noise:
        img = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        img = Image.new("RGB", size, (200, 210, 230))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return embed_truth(buf.getvalue(), SAMPLE_TRUTH)


def oss_event(bucket: str, objects: Sequence[tuple[str, str, int]]) -> bytes:
    """An OSS trigger event (bytes, as FC delivers it) for (key, etag, size) objects."""
    from permit_ocr_local.fcruntime.context import Upload
    from permit_ocr_local.fcruntime.context import oss_event as make

    return json.dumps(make(Upload(bucket, k, etag, size) for k, etag, size in objects)).encode()


class FcContext:
    """The few context attributes the handlers read (python3.12 runtime: no credentials)."""

    def __init__(self, timeout: int = 120) -> None:
        self.request_id = secrets.token_hex(16)
        self.function = type("Function", (), {"timeout": timeout, "memory": 128, "name": "permit-ocr"})()


# -- the cold invocation child ------------------------------------------------------------------------------------

def _invoke(entry: str, event_file: str) -> None:
    import resource

    event = Path(event_file).read_bytes()
    ctx = FcContext()
    t = time.perf_counter()
    if entry == "index":
        sys.path.insert(0, os.environ.get("PERMIT_OCR_FUNCTION_DIR", str(FUNCTION_DIR)))
        import index  # type: ignore[import-not-found]

        index.initialize(ctx)  # FC runs the initializer before the first request
        result = index.handler(event, ctx)
        status = json.dumps(result.get("counts"))
    else:
        import naive_handler  # type: ignore[import-not-found]

        status = naive_handler.handler(event, ctx)
    wall = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    print(RESULT_MARK + json.dumps({"maxrss_mb": peak_kb / 1024, "hwm_mb": vm_hwm_kb() / 1024, "wall_s": wall,
                                    "status": status}), flush=True)


def vm_hwm_kb() -> int:
    """Peak RSS of this process image. ru_maxrss is not usable for a child of a big process: Linux carries the
    pre-exec image's high-water mark (the forked copy of the bench process) into ru_maxrss across execve."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run_invoke_child(entry: str, event: bytes, env: dict[str, str], tmp: Path,
                     python: Sequence[str] = (sys.executable,)) -> dict[str, Any]:
    """A fresh interpreter, one invocation; the stack is in another process, so only the handler is counted."""
    event_file = tmp / f"event-{secrets.token_hex(4)}.json"
    event_file.write_bytes(event)
    proc = subprocess.run([*python, str(Path(__file__).resolve()), "invoke", entry, str(event_file)],
                          env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True, timeout=300)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            answer: dict[str, Any] = json.loads(line[len(RESULT_MARK):])
            return answer
    raise RuntimeError(f"invoke {entry} failed ({proc.returncode}): {proc.stderr[-2000:]}")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        _serve(Path(sys.argv[2]))
    elif sys.argv[1] == "invoke":
        _invoke(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
