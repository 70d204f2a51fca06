"""`make bench`: cold start, warm overhead, peak RSS, throughput, cost and package size of the deployed path,
each against its floor and against bench/naive_handler.py, printed as ONE Markdown table (offline, < 10 min).

    .venv/bin/python bench/run.py [--quick] [--ocr-latency-s 0.5]

Every figure is a median of repeated runs; the runs of the things compared are interleaved, so each ratio
comes from the same run. The stand-ins run in another process (bench/_measure.py serve): their CPU and
memory are never counted. Method and assumptions: bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _measure as m
from conversions import conversion_inputs

from permit_ocr_local.tools.shadow.cost import FC_PRICE

# --- the price table (FC 3.0 pay-as-you-go, list price of tier 1; plug your own) ---------------------------
# Source and figures: local/permit_ocr_local/tools/shadow/cost.py (shared with `permit-ocr shadow-report` and the
# engine function's table, bench/engine_function.py): Alibaba Cloud, "Function Compute 3.0 > Pay-as-you-go",
# updated 2024-08-27; tier 1 (0-100 M CU/month) costs USD 0.000020/CU.
PRICE = FC_PRICE
NAIVE_MEMORY_MB, NAIVE_VCPU = 512, 0.35  # fc3 defaults (reference fc3/schema.json: memorySize 512, cpu 0.35)
FLOOR_IMPORTS = ["alibabacloud_ocr_api20210707.client", "alibabacloud_oss_v2", "orjson"]
OCR_SDK = "alibabacloud_ocr_api20210707.client"


@dataclass
class Row:
    metric: str
    ours: str
    ref: str = ""
    ratio: str = ""
    naive: str = ""
    naive_ratio: str = ""
    goal: str = ""
    met: str = ""


def fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


# --- cold start ----------------------------------------------------------------------------------------------

def bench_cold(n: int, tmp: Path, rows: list[Row]) -> None:
    py = sys.executable
    # Same footing for every variant: .pyc for all modules (SDKs and ours) from one cache filled by a warm-up
    # round. (This machine sets PYTHONDONTWRITEBYTECODE, so function/ would otherwise be compiled on every run
    # while the SDKs load their install-time .pyc.) The "dist" variant shows the no-.pyc case FC really has.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    fn = str(m.FUNCTION_DIR)
    mns_eager = subprocess.run([py, "-c", "import index, sys; print('mns' in sys.modules)"], cwd=fn,
                               capture_output=True, text=True, check=True).stdout.strip() == "True"
    floor = FLOOR_IMPORTS + (["mns.account"] if mns_eager else [])
    variants: dict[str, tuple[list[str], str]] = {
        "pass": ([py, "-c", "pass"], fn),
        "floor": ([py, "-c", "import " + ", ".join(floor)], fn),
        "index": ([py, "-c", "import index"], fn),
        "index+ocr": ([py, "-c", f"import index, {OCR_SDK}"], fn),
        "naive": ([py, "-c", "import naive_handler"], str(m.BENCH_DIR)),
    }
    dist = m.REPO / "dist" / "function"
    base_py = Path(sys.base_prefix) / "bin" / "python3"
    if (dist / "index.py").exists() and base_py.exists():
        # as on FC: stdlib only (-S: no site-packages), the package as built, no .pyc in it (-B: none written)
        variants["dist"] = ([str(base_py), "-I", "-S", "-B", "-c",
                             f"import sys; sys.path.insert(0, {str(dist)!r}); import index, {OCR_SDK}"], fn)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(n + 1):  # interleaved rounds: a slow moment hits every variant alike; round 0 fills the cache
        for name, (argv, cwd) in variants.items():
            t = m.time_subprocess(argv, Path(cwd), env)
            if i:
                times[name].append(t)
    med = {k: m.median(v) for k, v in times.items()}
    label = " + ".join(floor)
    rows.append(Row(f"cold: `import index` (s; `python -c pass` = {med['pass']:.3f})", fmt(med["index"]),
                    f"{fmt(med['floor'])} (floor: {label})", f"{med['index'] / med['floor']:.2f}",
                    fmt(med["naive"]), f"{med['naive'] / med['index']:.2f}",
                    "", "(OCR SDK deferred; see next row)"))
    ratio = med["index+ocr"] / med["floor"]
    rows.append(Row("cold: `import index` + the OCR SDK its first call imports (s)", fmt(med["index+ocr"]),
                    fmt(med["floor"]), f"{ratio:.2f}", fmt(med["naive"]), f"{med['naive'] / med['index+ocr']:.2f}",
                    "<= 1.05", verdict(ratio <= 1.05)))
    if "dist" in med:
        rows.append(Row("cold: same, from dist/function with its shipped .pyc, stdlib-only python (as on FC) (s)",
                        fmt(med["dist"]), fmt(med["index+ocr"]) + " (venv, .pyc cached)",
                        f"{med['dist'] / med['index+ocr']:.2f}", "", "", "", ""))


# --- warm overhead --------------------------------------------------------------------------------------------

def _quiet_logs(cfg: Any) -> None:
    """Keep the handler's real JSON logging (it is part of the cost) but send it to /dev/null, so the bench
    prints its table and nothing else on stdout."""
    from permit_ocr import log

    log.configure(cfg.log_level, cfg.log_object_keys)
    log.use_stream(open(os.devnull, "w"))  # noqa: SIM115  (lives as long as the process)


def stage(what: str) -> None:
    print(f"bench: {what} ...", file=sys.stderr, flush=True)


def bench_warm(stack: m.StackProcess, tmp: Path, reps: int, rows: list[Row]) -> dict[str, float]:
    import naive_handler

    from permit_ocr.config import load_config
    from permit_ocr.handler import App

    os.environ.update(stack.env)  # the naive handler reads os.environ, as the samples do
    apps = {}
    for mode in ("url", "body"):
        # OCR_QPS lifted so the per-instance limiter never sleeps between back-to-back bench calls
        env = {**stack.env, "IMAGE_SOURCE": mode, "OCR_QPS": "1000"}
        cfg = load_config(env)
        apps[mode] = App(cfg, environ=env)
    _quiet_logs(cfg)
    image = m.truth_png()
    img_file = tmp / "warm.png"
    img_file.write_bytes(image)
    signer = m.Signer(stack.env)
    client = m.BareClient()
    samples: dict[str, list[m.Timing]] = {k: [] for k in ("url", "floor_url", "body", "floor_body", "naive")}
    trips: dict[str, list[int]] = {"url": [], "body": [], "naive": []}
    shapes: dict[str, Counter[str]] = {"url": Counter(), "body": Counter()}
    floor_bad = 0

    def put(key: str) -> bytes:
        return m.oss_event(stack.bucket, [(key, *stack.put(key, img_file))])

    for i in range(reps + 3):  # 3 warm-up rounds: the first call imports the OCR SDK, pools fill
        keep = i >= 3
        for mode, app in apps.items():
            key = f"uploads/warm-{i}-{mode}.png"
            event = put(key)
            stack.call("log")
            t, result = m.timed(lambda a=app, e=event: a.handle(e, m.FcContext()))
            assert result["counts"] == {"result": 1}, result["counts"]
            made = m.client_requests(stack.call("log")["log"])
            reqs = m.floor_requests(made, signer, stack.bucket, key, image)  # signed before the clock starts
            t_f, statuses = m.timed(lambda r=reqs: [client.send(x) for x in r])
            floor_bad += sum(s != e["status"] for s, e in zip(statuses, made, strict=True))
            stack.call("log")
            if keep:
                samples[mode].append(t)
                samples["floor_" + mode].append(t_f)
                trips[mode].append(len(made))
                shapes[mode].update(e["kind"] for e in made)
        event = put(f"uploads/warm-{i}-naive.png")
        t_n, _ = m.timed(lambda e=event: naive_handler.handler(e, m.FcContext()))
        if keep:
            samples["naive"].append(t_n)
            trips["naive"].append(len(m.client_requests(stack.call("log")["log"])))
    client.close()
    med = {f"{k}_{f}": m.median(getattr(t, f) for t in v) * 1000
           for k, v in samples.items() for f in ("wall_s", "cpu_s", "thread_cpu_s")}
    note = f"; {floor_bad} floor statuses differed" if floor_bad else ""
    for mode in ("url", "body"):
        n_trips = m.median(trips[mode])
        rows.append(Row(f"warm {mode}: requests per image, happy path (OCR call included)", f"{n_trips:.0f}",
                        f"same, bare http.client, presigned/precomputed{note}", "1.00",
                        f"{m.median(trips['naive']):.0f}", "", "<= 5", verdict(n_trips <= 5)))
        for kind, n in sorted(shapes[mode].items()):
            rows.append(Row(f"  {mode}: {kind}", f"{n / reps:.0f}", "", "", "", ""))
        for field, what, goal in (("wall_s", "wall", True), ("cpu_s", "CPU, process", True),
                                  ("thread_cpu_s", "CPU, calling thread", False)):
            ours, floor, naive = med[f"{mode}_{field}"], med[f"floor_{mode}_{field}"], med[f"naive_{field}"]
            ratio = ours / floor
            rows.append(Row(f"warm {mode}: {what} per image, stand-ins instant (ms)", fmt(ours), fmt(floor),
                            f"{ratio:.2f}", fmt(naive), f"{naive / ours:.2f}", "<= 1.2" if goal else "",
                            verdict(ratio <= 1.2) if goal else ""))
    return med


# --- peak RSS -------------------------------------------------------------------------------------------------

def bench_rss(stack: m.StackProcess, tmp: Path, n: int, rows: list[Row]) -> None:
    big = m.truth_png((1900, 1800), noise=True)
    assert len(big) <= 10 * 1024 * 1024, len(big)
    big_file = tmp / "big.png"
    big_file.write_bytes(big)
    results: dict[str, list[dict[str, Any]]] = {"url": [], "body": [], "engine": [], "naive": []}
    for i in range(n):
        for mode in ("url", "body", "engine"):  # engine: the bytes travel on to the engine function (body mode)
            key = f"uploads/rss-{mode}-{i}.png"
            event = m.oss_event(stack.bucket, [(key, *stack.put(key, big_file))])
            env = {**stack.env, "IMAGE_SOURCE": mode if mode != "engine" else "body",
                   **({"OCR_BACKEND": "engine"} if mode == "engine" else {})}
            r = m.run_invoke_child("index", event, env, tmp)
            assert '"result": 1' in r["status"], r
            results[mode].append(r)
    # the naive handler once: its BytesIO body costs seconds per 10 MB (quadratic read, ocr-api.md §4)
    key = "uploads/rss-naive.png"
    event = m.oss_event(stack.bucket, [(key, *stack.put(key, big_file))])
    results["naive"].append(m.run_invoke_child("naive", event, stack.env, tmp))
    rss = {k: m.median(r["hwm_mb"] for r in v) for k, v in results.items()}
    wall = {k: m.median(r["wall_s"] for r in v) for k, v in results.items()}
    mb = f"{len(big) / 2**20:.1f} MiB"
    for mode, goal in (("url", 80.0), ("body", 115.0), ("engine", 115.0)):
        what = f"IMAGE_SOURCE={mode}" if mode != "engine" else "OCR_BACKEND=engine (the bytes sent on)"
        rows.append(Row(f"peak RSS, one cold invocation, {what}, {mb} PNG (MB)", fmt(rss[mode]),
                        "", "", fmt(rss["naive"]), f"{rss['naive'] / rss[mode]:.2f}", f"<= {goal:.0f}",
                        verdict(rss[mode] <= goal)))
    rows.append(Row(f"one cold invocation wall incl. imports, {mb} PNG (s; url / body)",
                    f"{fmt(wall['url'])} / {fmt(wall['body'])}", "", "", fmt(wall["naive"]),
                    f"{wall['naive'] / wall['body']:.1f} (vs body)"))


# --- conversions (issue 23) ------------------------------------------------------------------------------------

def bench_conversions(stack: m.StackProcess, tmp: Path, n: int, rows: list[Row]) -> None:
    """One cold invocation per upload (initializer + handler), planned for FC's 128 MB, peak RSS from VmHWM."""
    memory = str(s_yaml_function().get("memorySize", 128))
    for label, path in conversion_inputs(tmp).items():
        runs = []
        for i in range(n):
            key = f"uploads/conv-{i}-{path.name}"
            event = m.oss_event(stack.bucket, [(key, *stack.put(key, path))])
            runs.append(m.run_invoke_child("index", event, {**stack.env, "FC_FUNCTION_MEMORY_SIZE": memory}, tmp))
        rss, wall = m.median(r["hwm_mb"] for r in runs), m.median(r["wall_s"] for r in runs)
        mb = f"{path.stat().st_size / 2**20:.1f} MiB"
        rows.append(Row(f"conversion, one cold invocation, {label} ({mb}), memory planned for {memory} MB: peak RSS "
                        f"(MB) / wall incl. imports (s); outcome {runs[-1]['status']}", f"{fmt(rss)} / {fmt(wall)}",
                        "", "", "", "", f"<= {memory} MB", verdict(rss <= int(memory))))


# --- throughput -----------------------------------------------------------------------------------------------

def bench_throughput(stack: m.StackProcess, tmp: Path, runs: int, records: int, slow_s: float,
                     rows: list[Row]) -> None:
    import naive_handler

    from permit_ocr.config import load_config
    from permit_ocr.handler import App

    img_file = tmp / "warm.png"
    apps = {}
    for workers in (4, 1):
        # OCR_QPS lifted: this measures the pool; the deployed OCR_QPS (10) caps an instance at 10 images/s
        env = {**stack.env, "IMAGE_SOURCE": "url", "WORKERS": str(workers), "OCR_QPS": "1000"}
        apps[workers] = App(load_config(env), environ=env)
    stack.call("slow", service="ocr", slow_s=slow_s)
    rate: dict[str, list[float]] = {"4": [], "1": [], "naive": []}
    try:
        for run in range(runs):
            for workers, app in apps.items():
                objs = [(k, *stack.put(k, img_file)) for k in
                        (f"uploads/tp-{workers}-{run}-{j}.png" for j in range(records))]
                event = m.oss_event(stack.bucket, objs)
                t, result = m.timed(lambda a=app, e=event: a.handle(e, m.FcContext()))
                assert result["counts"] == {"result": records}, result["counts"]
                rate[str(workers)].append(records / t.wall_s)
            objs = [(k, *stack.put(k, img_file)) for k in (f"uploads/tp-n-{run}-{j}.png" for j in range(records))]
            naive_event = m.oss_event(stack.bucket, objs)
            t, _ = m.timed(lambda e=naive_event: naive_handler.handler(e, m.FcContext()))
            rate["naive"].append(1 / t.wall_s)  # it handles events[0] only: 1 image, 49 dropped
    finally:
        stack.call("fast")
    med = {k: m.median(v) for k, v in rate.items()}
    rows.append(Row(f"throughput, {records}-record event, OCR +{slow_s * 1000:.0f} ms (images/s; WORKERS=4 vs 1)",
                    fmt(med["4"]), fmt(med["1"]) + " (WORKERS=1)", f"{med['4'] / med['1']:.2f}",
                    fmt(med["naive"]) + f" (1 of {records} done)", f"{med['naive'] / med['4']:.2f}"))


# --- cost -------------------------------------------------------------------------------------------------------

def s_yaml_function() -> dict[str, Any]:
    import yaml

    doc = yaml.safe_load((m.REPO / "s.yaml").read_text())
    props: dict[str, Any] = next(iter(doc["resources"].values()))["props"]
    return props


def vcpu_for(memory_mb: int, cpu: float | None) -> float:
    """s.yaml's cpu, else an assumption: the fc3 default (0.35) capped at 1 vCPU per GB (FC 3.0's memory:vCPU
    ratio must lie in 1..4), rounded down to the 0.05 step. Check the console for the real figure."""
    if cpu:
        return float(cpu)
    return max(0.05, int(min(0.35, memory_mb / 1024) / 0.05) * 0.05)


def duration_s(wall_ms: float, cpu_ms: float, vcpu: float, ocr_latency_s: float) -> float:
    """Billed time per image: the OCR service's latency + our local work, whose CPU part stretches by 1/vCPU
    (the bench ran on a full core; FC gives a fraction of one)."""
    return ocr_latency_s + (max(wall_ms - cpu_ms, 0) + cpu_ms / vcpu) / 1000


def cost_per_1000(duration: float, memory_mb: int, vcpu: float) -> tuple[float, float, float]:
    """(memory GB-s, vCPU-s, USD) for 1,000 images, one invocation each (an OSS event holds one record)."""
    gb_s = 1000 * duration * memory_mb / 1024
    vcpu_s = 1000 * duration * vcpu
    cu = gb_s * PRICE["cu_per_gb_s"] + vcpu_s * PRICE["cu_per_vcpu_s"] + 1000 * PRICE["cu_per_invocation"]
    return gb_s, vcpu_s, cu * PRICE["usd_per_cu"]


def bench_cost(warm: dict[str, float], ocr_latency_s: float, rows: list[Row]) -> None:
    props = s_yaml_function()
    mem = int(props.get("memorySize", 512))
    vcpu = vcpu_for(mem, props.get("cpu"))
    ours = cost_per_1000(duration_s(warm["url_wall_s"], warm["url_cpu_s"], vcpu, ocr_latency_s), mem, vcpu)
    naive = cost_per_1000(duration_s(warm["naive_wall_s"], warm["naive_cpu_s"], NAIVE_VCPU, ocr_latency_s),
                          NAIVE_MEMORY_MB, NAIVE_VCPU)
    rows.append(Row(f"cost per 1,000 images: memory GB-s (ours {mem} MB/{vcpu:.2f} vCPU, naive "
                    f"{NAIVE_MEMORY_MB} MB/{NAIVE_VCPU} vCPU; OCR latency {ocr_latency_s} s assumed)",
                    fmt(ours[0]), "", "", fmt(naive[0]), f"{naive[0] / ours[0]:.2f}"))
    rows.append(Row(f"cost per 1,000 images: FC USD (CU table, USD {PRICE['usd_per_cu']}/CU; OCR fee excluded)",
                    f"{ours[2]:.4f}", "", "", f"{naive[2]:.4f}", f"{naive[2] / ours[2]:.2f}"))


# --- package --------------------------------------------------------------------------------------------------

def bench_package(rows: list[Row]) -> None:
    dist = m.REPO / "dist" / "function"
    if (dist / "index.py").exists():
        size = m.dir_size(dist) / 1e6
        rows.append(Row("package: dist/function unzipped (MB)", fmt(size), "", "", "", "", "<= 30",
                        verdict(size <= 30)))
    else:
        rows.append(Row("package: dist/function unzipped (MB)", "not built (`make package`)", "", "", "", "",
                        "<= 30", "n/a"))


def print_table(rows: list[Row]) -> None:
    print("| metric | permit-ocr | reference | ratio | naive | naive / permit-ocr | goal | met |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.metric} | {r.ours} | {r.ref} | {r.ratio} | {r.naive} | {r.naive_ratio} | {r.goal} | {r.met} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run, ~1 min)")
    ap.add_argument("--ocr-latency-s", type=float, default=0.5,
                    help="assumed OCR service latency for the cost rows (default 0.5 s; see docs/performance.md)")
    args = ap.parse_args(argv)
    cold_n, warm_n, rss_n, tp_runs = (3, 5, 1, 1) if args.quick else (9, 21, 3, 3)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="permit-ocr-bench-") as td:
        tmp = Path(td)
        stage(f"cold start ({cold_n} fresh interpreters)")
        bench_cold(cold_n, tmp, rows)
        with m.StackProcess(tmp / "root") as stack:
            stage(f"warm path ({warm_n} images per mode, requests counted)")
            warm = bench_warm(stack, tmp, warm_n, rows)
            stage("peak memory")
            bench_rss(stack, tmp, rss_n, rows)
            stage("conversions (12 MB JPEG, 12 MP HEIC, 2-page PDF, 9000 px PNG)")
            bench_conversions(stack, tmp, rss_n, rows)
            stage("pool throughput")
            bench_throughput(stack, tmp, tp_runs, 50, 0.05, rows)
        bench_cost(warm, args.ocr_latency_s, rows)
        stage("package size")
        bench_package(rows)
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
