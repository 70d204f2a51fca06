"""Accuracy and latency of the embedded engine on a seeded synthetic set (offline, < 10 min on 2 cores).

    .venv/bin/python bench/bench_engine.py [-n 200] [--seed 7]

Half the images are clean, half carry 1-3 random degradations (at most one rotation); kinds are drawn
at random. Prints per-field and overall exact-match accuracy and latency percentiles as Markdown.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from typing import Any

from permit_ocr_local.engine import Engine, EngineError
from permit_ocr_local.synth import FIELDS, KINDS, generate

_ROTATIONS = ("rotate", "rot90", "rot180", "rot270")
_OTHERS = ("perspective", "blur", "noise", "jpeg", "light", "photocopy")


def plan(n: int, seed: int) -> list[tuple[int, str, tuple[str, ...]]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = rng.choice(KINDS)
        deg: tuple[str, ...] = ()
        if i % 2:
            picks = rng.sample(_OTHERS, rng.randint(0, 2))
            if rng.random() < 0.6 or not picks:
                picks.append(rng.choice(_ROTATIONS))
            deg = tuple(sorted(picks))
        out.append((seed * 100_000 + i, kind, deg))
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def run(n: int, seed: int) -> dict[str, Any]:
    engine = Engine()
    engine.recognize(generate(1, "hk")[0])  # load the models outside the timings
    hits: dict[str, dict[str, int]] = {"clean": dict.fromkeys(FIELDS, 0), "degraded": dict.fromkeys(FIELDS, 0)}
    totals = {"clean": 0, "degraded": 0}
    latency: dict[str, list[float]] = {"clean": [], "degraded": []}
    cpu: dict[str, list[float]] = {"clean": [], "degraded": []}  # process CPU s: less hurt by a busy box
    failures: list[str] = []
    for s, kind, deg in plan(n, seed):
        image, truth = generate(s, kind, deg)
        group = "degraded" if deg else "clean"
        totals[group] += 1
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            data = engine.recognize(image)["data"]
        except EngineError as exc:
            data = dict.fromkeys(FIELDS, "")
            failures.append(f"seed={s} {kind} {'+'.join(deg) or 'clean'}: {exc.code}")
        latency[group].append(time.perf_counter() - t0)
        cpu[group].append(time.process_time() - c0)
        wrong = []
        for f in FIELDS:
            if data[f] == truth["data"][f]:
                hits[group][f] += 1
            else:
                wrong.append(f"{f}={data[f]!r}≠{truth['data'][f]!r}")
        if wrong and len(failures) < 40:
            failures.append(f"seed={s} {kind} {'+'.join(deg) or 'clean'}: " + ", ".join(wrong))
    return {"hits": hits, "totals": totals, "latency": latency, "cpu": cpu, "failures": failures}


def report(res: dict[str, Any]) -> str:
    hits, totals, lat = res["hits"], res["totals"], res["latency"]
    lines = ["| field | clean | degraded |", "|---|---:|---:|"]
    for f in FIELDS:
        lines.append(f"| {f} | {100 * hits['clean'][f] / max(1, totals['clean']):.1f} % "
                     f"| {100 * hits['degraded'][f] / max(1, totals['degraded']):.1f} % |")
    overall = {g: 100 * sum(hits[g].values()) / max(1, totals[g] * len(FIELDS)) for g in totals}
    lines.append(f"| **all fields** | **{overall['clean']:.1f} %** | **{overall['degraded']:.1f} %** |")
    lines.append(f"| images | {totals['clean']} | {totals['degraded']} |")
    every = lat["clean"] + lat["degraded"]
    lines += ["", "| latency (s) | clean | degraded | all |", "|---|---:|---:|---:|"]
    for name, q in (("p50", 0.5), ("p95", 0.95)):
        lines.append(f"| {name} | {pct(lat['clean'], q):.3f} | {pct(lat['degraded'], q):.3f} | {pct(every, q):.3f} |")
    lines.append(f"| mean | {statistics.mean(lat['clean']):.3f} | {statistics.mean(lat['degraded']):.3f} "
                 f"| {statistics.mean(every):.3f} |")
    cpu = res["cpu"]
    lines.append(f"| CPU s/image (mean) | {statistics.mean(cpu['clean']):.3f} | {statistics.mean(cpu['degraded']):.3f} "
                 f"| {statistics.mean(cpu['clean'] + cpu['degraded']):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200, help="number of images (half clean, half degraded)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--failures", action="store_true", help="list the misread images")
    args = ap.parse_args(argv)
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    res = run(args.n, args.seed)
    print(report(res))
    print(f"\n{args.n} images in {time.perf_counter() - t0:.0f} s (generation included); "
          f"load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end, {os.cpu_count()} CPUs")
    if args.failures:
        print("\n" + "\n".join(res["failures"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
