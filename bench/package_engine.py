"""`make package-engine`: build dist/engine, the engine function's code package, exactly as s.selfhosted.yaml's
pre-deploy action builds it (`code: ./dist/engine`).

    .venv/bin/python bench/package_engine.py [--zip] [--smoke] [--check] [--fetch] [--offline]

Contents: engine-function/ (index.py, permit_ocr_engine/), the embedded recognizer's modules
(local/permit_ocr_local/engine/, its public entry point and what it imports; not the annotation helper), the
function's own permit_ocr package (the wire format, the log, the API's limits) and the wheels of
engine-function/requirements.txt for FC's python3.12 on x86_64, unpacked: RapidOCR with its ONNX models inside
its wheel (nothing is downloaded at run time), onnxruntime, headless OpenCV, numpy, pypinyin. The same steps as
bench/package.py (pinned to the venv's versions, trimmed, stripped, byte-compiled, reproducible); `--smoke` loads
the models and reads a sample permit from the result with a stdlib-only interpreter (-I -S -B).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parent))
import package as pkg

REPO = pkg.REPO
ENGINE_DIR = REPO / "engine-function"
REQUIREMENTS = ENGINE_DIR / "requirements.txt"
OUT = pkg.DIST / "engine"
# FC 3.0's code package limits ("Quotas and limits", alibabacloud.com/help/en/functioncompute/fc-3-0/
# product-overview/limits-of-usage): a ZIP uploaded by a developer tool (Serverless Devs) or through OSS may be
# 500 MB in the large regions (cn-hangzhou among them), 100 MB elsewhere; 100 MB through the SDK/API (Base64)
FC_ZIP_MAX = 500 * 1000 * 1000
FC_ZIP_MAX_EVERYWHERE = 100 * 1000 * 1000
SKIPPED_ENGINE_MODULES = ("annotate.py",)  # the box-drawing helper of `permit-ocr recognize`: tooling, never loaded


def sources() -> list[tuple[Path, PurePosixPath]]:
    """(file, path in the package) of everything of ours the engine function ships."""
    files = [(ENGINE_DIR / rel, rel) for rel in pkg.function_files(ENGINE_DIR) if rel.name != "requirements.txt"]
    files += [(pkg.FUNCTION_DIR / rel, rel) for rel in pkg.function_files(pkg.FUNCTION_DIR)
              if rel.parts[0] == "permit_ocr"]
    local = REPO / "local" / "permit_ocr_local"
    files.append((local / "__init__.py", PurePosixPath("permit_ocr_local/__init__.py")))
    files += [(p, PurePosixPath("permit_ocr_local/engine") / p.name) for p in sorted((local / "engine").glob("*.py"))
              if p.name not in SKIPPED_ENGINE_MODULES]
    return sorted(files, key=lambda f: str(f[1]))


def source_digest() -> str:
    h = hashlib.sha256()
    for path, rel in sources():
        h.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def stale(out: Path) -> str | None:
    try:
        doc = json.loads((out / pkg.MANIFEST).read_text())
    except FileNotFoundError:
        return f"{out} is missing or was not built by bench/package_engine.py"
    if doc.get("source_sha256") != source_digest():
        return f"{out} was built from other sources than engine-function/, the engine and permit_ocr now"
    return None


def build(out: Path, strip: bool = True, pyc: bool = True, offline: bool = False) -> Path:
    with tempfile.TemporaryDirectory(prefix="permit-ocr-engine-package-") as td:
        tmp = Path(td)
        wheels_dir, stage = tmp / "wheels", tmp / "engine"
        for d in (wheels_dir, stage):
            d.mkdir()
        wheels = pkg.download(REQUIREMENTS, wheels_dir, offline=offline)
        print(f"  {len(wheels)} wheels: {', '.join(w.name.split('-')[0] for w in wheels)}")
        pkg.unpack(wheels, stage)
        raw = pkg.size_of(stage)
        cut, saved = pkg.trim_and_strip(stage, strip and shutil.which("strip") is not None)
        for path, rel in sources():
            dest = stage / rel
            if dest.exists():
                raise SystemExit(f"{rel}: also shipped by a wheel")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        dists = sorted((pkg.distribution_of(w) for w in wheels), key=lambda d: str(d["name"]).lower())
        (stage / pkg.MANIFEST).write_text(json.dumps({"source_sha256": source_digest(), "distributions": dists},
                                                     indent=1, sort_keys=True) + "\n")
        if pyc:  # OpenCV's loader reads its config*.py as files (exec): they keep their source
            keep = [PurePosixPath(p.relative_to(stage).as_posix()) for p in stage.glob("cv2/config*.py")]
            pkg.compile_pyc(stage, [rel for _path, rel in sources()] + keep)
        pkg.normalize(stage)
        print(f"  vendored {raw / 1e6:.1f} MB; trimmed {cut / 1e6:.1f} MB, strip saved {saved / 1e6:.1f} MB")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(stage, out, copy_function=shutil.copy2)
        pkg.normalize(out)
    return out


SMOKE = """
import json, sys, time
sys.path.insert(0, {out!r})
t0 = time.perf_counter()
import index
class Ctx:
    request_id = "smoke"
index.initialize(Ctx())
loaded = time.perf_counter() - t0
from permit_ocr import enginewire
answer = enginewire.decode_answer(index.handler(enginewire.encode_request(open({image!r}, "rb").read()), Ctx()))
fields = (answer.data or {{}}).get("data") or {{}}
print(json.dumps({{"load_s": round(loaded, 2), "code": answer.code, "fields": sum(1 for v in fields.values() if v)}}))
"""


def smoke(out: Path) -> None:
    """Load the models and read samples/hk-clean.jpg from ``out`` with a stdlib-only python3.12."""
    base_py = Path(sys.base_prefix) / "bin" / "python3"
    code = SMOKE.format(out=str(out), image=str(REPO / "samples" / "hk-clean.jpg"))
    r = subprocess.run([str(base_py), "-I", "-S", "-B", "-c", code], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"engine smoke failed:\n{r.stderr[-3000:]}")
    got = json.loads(r.stdout.strip().splitlines()[-1])
    if got["code"] is not None or got["fields"] < 8:
        raise SystemExit(f"engine smoke read too little: {got}")
    print(f"  smoke: imports and models {got['load_s']} s, samples/hk-clean.jpg read ({got['fields']} fields)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--zip", action="store_true", help="also write dist/engine.zip and print its size and sha256")
    ap.add_argument("--smoke", action="store_true", help="load the models and read a sample from the result")
    ap.add_argument("--offline", action="store_true", help="use var/wheelhouse only; never the network")
    ap.add_argument("--fetch", action="store_true", help="only fill var/wheelhouse (network), then exit")
    ap.add_argument("--check", action="store_true", help="exit 1 unless --out is current (no build)")
    args = ap.parse_args(argv)
    if args.fetch:
        pkg.fetch(REQUIREMENTS)
        return 0
    if args.check:
        why = stale(args.out)
        print(f"engine package: {why or 'current'}", file=sys.stderr if why else sys.stdout)
        return 1 if why else 0
    print(f"building {args.out} from engine-function/, the engine and permit_ocr (wheels from "
          f"{pkg.WHEELHOUSE.relative_to(REPO)})")
    out = build(args.out, offline=args.offline)
    print(f"{out}: {pkg.size_of(out) / 1e6:.1f} MB unzipped")
    if args.zip:
        zip_path = out.with_suffix(".zip")
        digest = pkg.write_zip(out, zip_path)
        zipped = zip_path.stat().st_size
        fits = ("within both" if zipped <= FC_ZIP_MAX_EVERYWHERE else
                "within the first only" if zipped <= FC_ZIP_MAX else "OVER")
        print(f"{zip_path.name}: {zipped / 1e6:.1f} MB, sha256 {digest}; FC's ZIP limit {FC_ZIP_MAX / 1e6:.0f} MB "
              f"(cn-hangzhou and the large regions), {FC_ZIP_MAX_EVERYWHERE / 1e6:.0f} MB everywhere: {fits}")
    if args.smoke:
        smoke(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
