"""`make bench`'s third table: the engine function (dist/engine, as `s deploy -t s.selfhosted.yaml` ships it),
measured as FC runs it, and what each OCR_BACKEND costs per 1,000 images.

    .venv/bin/python bench/engine_function.py [-n 2] [--seed 29] [--api-price USD]

A stdlib-only python3.12 (-I -S -B, no .pyc written: FC's /code is read-only) imports the package's index,
runs its initializer (the models load: the cold start) and answers one InvokeFunction request per image, with
the CPU it may use held to what FC gives the chosen size: 1 vCPU is one core (sched_setaffinity) and one ONNX
thread, 2 vCPU both cores and two. The images: samples/ and, per layout family of the generator, ``n`` clean cards
and ``n`` phone photos from a seed the engine was never tuned on. Printed: peak RSS (VmHWM), cold start, p50/p95
wall and CPU per image, the share of answers the function's own review rule flags (a cascade's escalations),
how many answers a cascade would keep with a field that differs from the truth, and the cost per 1,000 images
of the API alone, the engine alone and the cascade (FC's price table; the API's fee: see
local/permit_ocr_local/tools/shadow/cost.py). Every figure is on synthetic permits.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import package_engine
from PIL import Image

from permit_ocr.document import review_data
from permit_ocr_local.synth import FAMILIES, KINDS, generate
from permit_ocr_local.tools.shadow.cost import API_PRICE_USD, costs

REPO = package_engine.REPO
CONFIGS = ((1.0, 1024, "0", 1), (2.0, 2048, "0,1", 2))  # (vCPU, memorySize, cores, ONNX threads): FC's 1..4 ratio
CHILD = r"""
import json, os, sys, time
os.sched_setaffinity(0, {int(c) for c in os.environ["BENCH_CORES"].split(",")})
sys.path.insert(0, os.environ["BENCH_PACKAGE"])
t0 = time.perf_counter()
import index
imported = time.perf_counter() - t0
class Ctx:
    request_id = "bench"
index.initialize(Ctx())
loaded = time.perf_counter() - t0
from permit_ocr import enginewire
out = []
for path in json.load(open(os.environ["BENCH_IMAGES"])):
    request = enginewire.encode_request(open(path, "rb").read())
    w0, c0 = time.perf_counter(), time.process_time()
    answer = enginewire.decode_answer(index.handler(request, Ctx()))
    out.append({"path": path, "s": time.perf_counter() - w0, "cpu": time.process_time() - c0,
                "code": answer.code, "data": answer.data})
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print("BENCH " + json.dumps({"import_s": imported, "cold_s": loaded, "hwm_mb": hwm / 1024, "reads": out}))
"""


def images(tmp: Path, n: int, seed: int) -> list[tuple[Path, dict[str, str]]]:
    """(image file, true fields): samples/ first, then the families' cards and phone photos."""
    out = []
    for p in sorted((REPO / "samples").glob("*.jpg")):
        truth = json.loads(p.with_name(p.stem + ".truth.json").read_text())
        out.append((p, truth["data"]))
    big = tmp / "large.jpg"  # a phone camera's full frame: what peak RSS must hold
    Image.open(REPO / "samples" / "hk-clean.jpg").resize((4032, 2720)).save(big, "JPEG", quality=97)
    out.append((big, json.loads((REPO / "samples" / "hk-clean.truth.json").read_text())["data"]))
    for fi, fam in enumerate(FAMILIES):
        for si, degrade in enumerate(((), ("phone",))):
            for i in range(n):
                image, truth = generate(seed * 100_000 + fi * 1000 + si * 100 + i, KINDS[(i + fi) % 3], degrade, fam)
                path = tmp / f"{fam}-{si}-{i}.img"
                path.write_bytes(image)
                out.append((path, truth["data"]))
    return out


def measure(package: Path, files: list[Path], cores: str, threads: int, tmp: Path) -> dict[str, Any]:
    listing = tmp / "images.json"
    listing.write_text(json.dumps([str(p) for p in files]))
    env = {"PATH": os.environ.get("PATH", ""), "BENCH_PACKAGE": str(package), "BENCH_IMAGES": str(listing),
           "BENCH_CORES": cores, "PERMIT_OCR_THREADS": str(threads), "LOG_LEVEL": "warning"}
    base_py = Path(sys.base_prefix) / "bin" / "python3"
    r = subprocess.run([str(base_py), "-I", "-S", "-B", "-c", CHILD], env=env, capture_output=True, text=True,
                       check=False)
    line = next((x for x in r.stdout.splitlines() if x.startswith("BENCH ")), None)
    if r.returncode != 0 or line is None:
        raise SystemExit(f"the engine child failed:\n{r.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(line[len("BENCH "):])
    return result


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def judge(reads: list[dict[str, Any]], truths: list[dict[str, str]]) -> dict[str, int]:
    """The function's own review rule on every answer, and the answers a cascade would keep that are wrong."""
    now = datetime.datetime.now(datetime.UTC)
    flagged = refused = kept_wrong = fields_wrong = 0
    for read, truth in zip(reads, truths, strict=True):
        if read["code"] is not None:
            refused += 1
            continue
        data = read["data"]
        wrong = sum(data["data"].get(f, "") != v for f, v in truth.items())
        fields_wrong += wrong
        if review_data(data, 90, now)["needsReview"]:
            flagged += 1
        elif wrong:
            kept_wrong += 1
    return {"images": len(reads), "flagged": flagged, "refused": refused, "kept_wrong": kept_wrong,
            "fields_wrong": fields_wrong, "fields": sum(len(t) for t in truths)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("-n", type=int, default=2, help="cards and photos per family (default 2)")
    ap.add_argument("--seed", type=int, default=29, help="generator seed (default 29: never opened)")
    ap.add_argument("--api-price", type=float, default=API_PRICE_USD, help="the API's fee per call, USD")
    args = ap.parse_args(argv)
    package = package_engine.OUT
    why = package_engine.stale(package)
    if why:
        print(f"engine function: {why}: run `make package-engine` (make bench does)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="permit-ocr-engine-bench-") as td:
        tmp = Path(td)
        todo = images(tmp, args.n, args.seed)
        print(f"engine function: {len(todo)} images ({len(FAMILIES)} families x {args.n} x clean/photo, seed "
              f"{args.seed}, + samples/), load average {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
        runs = {(vcpu, mem): measure(package, [p for p, _ in todo], cores, threads, tmp)
                for vcpu, mem, cores, threads in CONFIGS}
    truths = [t for _, t in todo]
    print(render(runs, truths, args.api_price, package))
    return 0


def render(runs: dict[tuple[float, int], dict[str, Any]], truths: list[dict[str, str]], api_price: float,
           package: Path) -> str:
    zip_path = package.with_suffix(".zip")
    lines = ["| engine function (dist/engine) | " + " | ".join(f"{v:g} vCPU, {m} MB" for v, m in runs) + " |",
             "|---|" + "---:|" * len(runs)]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row("peak RSS, cold start + every image (MB; VmHWM)", [f"{r['hwm_mb']:.0f}" for r in runs.values()])
    row("cold start: `import index` (s)", [f"{r['import_s']:.2f}" for r in runs.values()])
    row("cold start: imports + model load, the initializer (s)", [f"{r['cold_s']:.2f}" for r in runs.values()])
    for q, name in ((0.5, "p50"), (0.95, "p95")):
        row(f"{name} per image, wall (s)", [f"{pct([x['s'] for x in r['reads']], q):.2f}" for r in runs.values()])
        row(f"{name} per image, CPU (s)", [f"{pct([x['cpu'] for x in r['reads']], q):.2f}" for r in runs.values()])
    verdicts = {v: judge(r["reads"], truths) for v, r in runs.items()}
    first = next(iter(verdicts.values()))
    row("answers flagged by the function's review (a cascade's API calls)",
        [f"{j['flagged'] + j['refused']} of {j['images']} ({100 * (j['flagged'] + j['refused']) / j['images']:.0f} %)"
         for j in verdicts.values()])
    row("answers a cascade keeps with a field unlike the truth",
        [f"{j['kept_wrong']} of {j['images'] - j['flagged'] - j['refused']}" for j in verdicts.values()])
    row("fields read right (all answers)",
        [f"{100 * (1 - j['fields_wrong'] / j['fields']):.1f} %" for j in verdicts.values()])
    size = package_engine.pkg.size_of(package)
    zipped = f"; zip {zip_path.stat().st_size / 1e6:.0f} MB" if zip_path.exists() else ""
    lines += ["", f"package: {size / 1e6:.0f} MB unzipped{zipped} (FC 3.0: a ZIP of up to "
              f"{package_engine.FC_ZIP_MAX / 1e6:.0f} MB through Serverless Devs in cn-hangzhou and the other large "
              f"regions, {package_engine.FC_ZIP_MAX_EVERYWHERE / 1e6:.0f} MB elsewhere)", ""]
    escalated = (first["flagged"] + first["refused"]) / first["images"]
    lines += ["| cost per 1,000 images (USD; FC list price tier 1; API fee " + f"{api_price:g} per call) | "
              + " | ".join(f"{v:g} vCPU, {m} MB" for v, m in runs) + " |", "|---|" + "---:|" * len(runs)]
    for label, pick in (("API alone (OCR_BACKEND=api)", lambda c: c.api_usd),
                        ("engine alone (engine): its function + the caller waiting", lambda c: c.engine_usd),
                        (f"cascade, {100 * escalated:.0f} % sent on to the API (cascade)", lambda c: c.cascade_usd)):
        cells = []
        for (vcpu, mem), r in runs.items():
            # billed duration: the engine is compute-bound on its vCPU, so FC's wall time is about its CPU time
            # (this machine's wall time carries the other sessions' load)
            seconds = statistics.fmean(x["cpu"] for x in r["reads"]) / vcpu
            c = costs(seconds, escalated, api_price_usd=api_price, memory_mb=mem, vcpu=vcpu)
            cells.append(f"{pick(c):.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
