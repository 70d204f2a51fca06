"""The chaos run (`make chaos`): N uploads of every awkward kind through the function on the local stack, with
transient faults injected into OCR, OSS and MNS and a world that changes around it; then faults off, FC's
retries, replay and backfill; prints the invariant table, exits 1 when one is violated.

    .venv/bin/python bench/chaos.py [--uploads 10000] [--seed 1] [--fault-rate 0.2] [--sinks oss,mns]
                                    [--layout shared|beside] [--backend api|engine|cascade]

What is injected, the invariants and how to read the table: docs/chaos.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from permit_ocr_local.tools.chaos import Options, render, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--uploads", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--fault-rate", type=float, default=0.2, help="share of the function's requests faulted")
    p.add_argument("--sinks", default="oss,mns", choices=("oss", "mns", "oss,mns"))
    p.add_argument("--layout", default="shared", choices=("shared", "beside"),
                   help="shared: both source buckets write to one OUTPUT_BUCKET under out/{bucket}/; "
                        "beside: outputs beside each image (s.yaml's layout)")
    p.add_argument("--instances", type=int, default=16, help="concurrent function instances")
    p.add_argument("--clients", type=int, default=4, help="uploading client threads")
    p.add_argument("--root", type=Path, help="keep the stand-ins' files here (default: a temp dir, removed)")
    p.add_argument("--log-file", type=Path, help="also write the function's log lines here")
    p.add_argument("--backend", default="api", choices=("api", "engine", "cascade"),
                   help="the function's OCR_BACKEND; engine and cascade deploy the engine function (docs/chaos.md)")
    p.add_argument("--doubt", type=float, default=0.3, help="with cascade: share of plain permits the engine doubts")
    a = p.parse_args(argv)
    opts = Options(uploads=a.uploads, seed=a.seed, fault_rate=a.fault_rate, sinks=a.sinks, layout=a.layout,
                   instances=a.instances, clients=a.clients, root=a.root, log_file=a.log_file, progress=True,
                   backend=a.backend, doubt_share=a.doubt)
    print(f"chaos: {a.uploads} uploads, seed {a.seed}, fault rate {a.fault_rate}, sinks {a.sinks}, "
          f"layout {a.layout}, {a.instances} instances, OCR_BACKEND {a.backend}", flush=True)
    try:
        report = run(opts)
    except ValueError as exc:
        print(f"chaos: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
