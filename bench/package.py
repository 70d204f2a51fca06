"""`make package`: build dist/function exactly as `s deploy` uploads it (s.yaml `code: ./dist/function`).

    .venv/bin/python bench/package.py [--zip] [--no-strip] [--smoke]

Contents: function/ (index.py, requirements.txt, permit_ocr/) plus the wheels of function/requirements.txt for
FC's python3.12 on x86_64 (manylinux2014, cp312), unpacked. Steps, and why:
- versions are pinned to what the venv has installed (the versions the tests ran against). Without the pins,
  `--only-binary=:all:` silently picks older releases for sdist-only packages (alibabacloud-tea 0.4.0 instead
  of the tested 0.4.3);
- packages published as sdists only (alibabacloud-endpoint-util, alibabacloud-tea, ...) are built here with
  `pip wheel --no-deps`, and accepted only if the result is pure Python (`*-none-any.whl`);
- the unpacked tree is trimmed of files never loaded at run time (tests, C/Cython sources, stubs), and its
  shared objects are stripped of debug symbols (`strip --strip-unneeded`: the dynamic symbols stay), which
  took the SDKs' closure from ~47 MB to under 30 MB without removing any module; the conversion libraries
  (Pillow, pi-heif, PDFium) add about 20 MB after Pillow's unused native parts (AVIF, fonts, Tk) are cut;
- reproducible: files in sorted order, mode 644/755, mtime fixed at SOURCE_DATE_EPOCH (default 1980-01-01),
  no __pycache__; *.dist-info (RECORD included) is kept as the wheels ship it.
- vendored.json lists each vendored distribution, its version and top-level modules (read at start-up by
  function/permit_ocr/vendored.py, which makes sure those copies win over the runtime's own SDKs), and the
  sha256 of the sources it was built from (`--check` compares it with function/ now);
- wheels are kept in var/wheelhouse (`--fetch` fills it; `make install` does): later builds, and the test
  that builds the package, need no network (`--offline` insists on that).
`--smoke` proves the result: a stdlib-only interpreter (-I -S -B, so no venv site-packages and no .pyc
written) imports index and the OCR SDK from dist/function and runs one invocation against the local stack.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FUNCTION_DIR = REPO / "function"
DIST = REPO / "dist"
WHEELHOUSE = REPO / "var" / "wheelhouse"
MANIFEST = "vendored.json"  # function/permit_ocr/vendored.py reads it
# FC's python3.12 runtime is Debian 11 (glibc 2.31): manylinux_2_28 wheels run there (Pillow 13 ships no older tag)
PLATFORM_ARGS = ["--only-binary=:all:", "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
                 "--python-version", "3.12",
                 "--implementation", "cp", "--abi", "cp312"]
EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))  # 1980-01-01: the earliest a zip can hold

# Never loaded at run time. Each rule names a path suffix or a directory name, matched on POSIX paths.
TRIM_SUFFIXES = (".pyi", ".pyx", ".pxd", ".c", ".h", ".cpp")
TRIM_DIRS = ("__pycache__", "tests", "SelfTest")  # websocket/tests, certifi/tests, Crypto/SelfTest (1.6 MB)
# Pillow's native parts the function never loads (7.9 MB of the wheel): the AVIF codec (the API does not take
# AVIF, and the precheck refuses it by its ftyp brand before anything decodes it) and text rendering (ImageFont:
# FreeType, HarfBuzz, Brotli for WOFF2 fonts, and libpng, which only FreeType links; Pillow's PNG codec is its own
# over zlib), and the Tk bridge. _imaging, _webp and _imagingcms (a LAB TIFF's colours) and what they link stay;
# Pillow imports these lazily or guards their ImportError, and the package test converts every format with them
# gone (tests/function/test_vendored.py).
TRIM_NATIVE = re.compile(r"^PIL/_(avif|imagingft|imagingtk)\.[^/]*\.so$"
                         r"|^pillow\.libs/lib(avif|freetype|harfbuzz|brotlicommon|brotlidec|png16)-[^/]*$")
# What `s deploy` must not get from function/: caches and editor/OS droppings.
EXCLUDE_FUNCTION = re.compile(r"(^|/)(__pycache__|\.mypy_cache|\.ruff_cache|\.pytest_cache)(/|$)|\.pyc$|~$|\.swp$"
                              r"|(^|/)\.DS_Store$")


def function_files(function_dir: Path = FUNCTION_DIR) -> list[PurePosixPath]:
    """The files of function/ that go into the package, as sorted relative POSIX paths."""
    out = []
    for p in function_dir.rglob("*"):
        rel = PurePosixPath(p.relative_to(function_dir).as_posix())
        if p.is_file() and not EXCLUDE_FUNCTION.search(str(rel)):
            out.append(rel)
    return sorted(out)


def trimmed(rel: PurePosixPath) -> bool:
    """True for a vendored file that is never loaded at run time."""
    return (rel.suffix in TRIM_SUFFIXES or any(part in TRIM_DIRS for part in rel.parts[:-1]) or rel.suffix == ".pyc"
            or TRIM_NATIVE.search(str(rel)) is not None)


def pins() -> dict[str, str]:
    """name -> version of every distribution in this venv (normalized names), except this project."""
    out = {}
    for dist in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        if name != "permit-ocr":
            out[name] = dist.version
    return out


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True)


def fetch(requirements: Path, wheelhouse: Path = WHEELHOUSE) -> None:
    """Fill ``wheelhouse`` with manylinux/cp312 wheels for ``requirements`` at the venv's versions (network);
    sdist-only pure packages are built here."""
    versions = pins()
    wheelhouse.mkdir(parents=True, exist_ok=True)
    constraints = wheelhouse / "constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(versions.items())))
    for _ in range(30):  # one round per sdist-only package found
        r = _pip("download", *PLATFORM_ARGS, "-r", str(requirements), "-c", str(constraints), "-d", str(wheelhouse),
                 "--find-links", str(wheelhouse))
        if r.returncode == 0:
            return
        # with the pins as constraints, an sdist-only package shows up as a conflict with its constraint
        said = r.stdout + r.stderr
        missing = (re.search(r"The user requested \(constraint\) ([A-Za-z0-9_.\-]+)==", said)
                   or re.search(r"No matching distribution found for ([A-Za-z0-9_.\-]+)", said))
        if missing is None:
            raise SystemExit(f"pip download failed:\n{r.stderr[-3000:]}")
        name = re.sub(r"[-_.]+", "-", missing.group(1)).lower()
        if name not in versions:
            raise SystemExit(f"{name}: no wheel for the target and not installed in the venv to pin it")
        before = set(wheelhouse.glob("*.whl"))
        w = _pip("wheel", "--no-deps", "-w", str(wheelhouse), f"{name}=={versions[name]}")
        new = set(wheelhouse.glob("*.whl")) - before
        if w.returncode != 0 or not new:
            raise SystemExit(f"building a wheel for {name} failed:\n{w.stderr[-3000:]}")
        for whl in new:
            if not whl.name.endswith("-none-any.whl"):  # a compiled wheel built here would be for this host
                whl.unlink()
                raise SystemExit(f"{whl.name}: sdist-only and not pure Python; cannot build it for FC here")
        print(f"  built pure wheel from sdist: {', '.join(sorted(p.name for p in new))}")
    raise SystemExit("pip download kept failing")


def download(requirements: Path, dest: Path, wheelhouse: Path = WHEELHOUSE, offline: bool = False) -> list[Path]:
    """Exactly the wheels ``requirements`` needs, from ``wheelhouse`` alone; fetched first if it lacks some."""
    versions = pins()
    constraints = dest.parent / "constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(versions.items())))
    for attempt in (1, 2):
        r = _pip("download", *PLATFORM_ARGS, "--no-index", "--find-links", str(wheelhouse), "-r", str(requirements),
                 "-c", str(constraints), "-d", str(dest))
        if r.returncode == 0:
            return sorted(dest.glob("*.whl"))
        if offline or attempt == 2:
            raise SystemExit(f"{wheelhouse} lacks wheels for function/requirements.txt (run `make install`, "
                             f"or bench/package.py --fetch, once with network):\n{r.stderr[-1500:]}")
        print(f"  fetching wheels into {wheelhouse} (once; later builds are offline)")
        fetch(requirements, wheelhouse)
    raise AssertionError("unreachable")


def distribution_of(whl: Path) -> dict[str, Any]:
    """A wheel's distribution name, version and top-level importable modules (from its file list)."""
    with zipfile.ZipFile(whl) as zf:
        names = zf.namelist()
        meta_name = next(n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        meta = zf.read(meta_name).decode("utf-8", "replace")
    name = re.search(r"^Name: *(.+)$", meta, flags=re.M)
    version = re.search(r"^Version: *(.+)$", meta, flags=re.M)
    modules: set[str] = set()
    for n in names:
        parts = PurePosixPath(n).parts
        if parts[0].endswith(".data") and len(parts) > 2 and parts[1] in ("purelib", "platlib"):
            parts = parts[2:]
        elif parts[0].endswith((".data", ".dist-info")):
            continue
        top = parts[0]
        if len(parts) > 1:
            modules.add(top)
        elif top.endswith(".py") or ".so" in top:
            modules.add(top.split(".", 1)[0])
    modules = {m for m in modules if m.isidentifier()}  # wrapt-stubs/ and the like are not importable
    assert name and version, whl
    return {"name": name.group(1).strip(), "version": version.group(1).strip(), "modules": sorted(modules)}


def source_digest(function_dir: Path = FUNCTION_DIR) -> str:
    """sha256 over function/'s shipped files (paths and bytes): what a built package must have come from."""
    h = hashlib.sha256()
    for rel in function_files(function_dir):
        h.update(str(rel).encode() + b"\0" + (function_dir / rel).read_bytes() + b"\0")
    return h.hexdigest()


def write_manifest(wheels: Iterable[Path], target: Path) -> None:
    dists = sorted((distribution_of(w) for w in wheels), key=lambda d: str(d["name"]).lower())
    doc = {"source_sha256": source_digest(), "distributions": dists}
    (target / MANIFEST).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def stale(out: Path) -> str | None:
    """Why ``out`` is not the package of function/ as it is now, or None when it is."""
    try:
        doc = json.loads((out / MANIFEST).read_text())
    except FileNotFoundError:
        return f"{out} is missing or was not built by bench/package.py"
    if doc.get("source_sha256") != source_digest():
        return f"{out} was built from other sources than function/ now"
    return None


def unpack(wheels: Iterable[Path], target: Path) -> None:
    """Unpack wheels like an installer: *.data/purelib|platlib to the root, other *.data parts skipped."""
    owner: dict[str, str] = {}
    for whl in wheels:
        with zipfile.ZipFile(whl) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                parts = PurePosixPath(info.filename).parts
                if parts[0].endswith(".data"):
                    if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                        continue  # scripts, headers, data: nothing FC loads
                    parts = parts[2:]
                rel = PurePosixPath(*parts)
                if str(rel) in owner:  # two distributions shipping one module (e.g. crcmod vs crcmod-plus)
                    raise SystemExit(f"{rel}: shipped by both {owner[str(rel)]} and {whl.name}")
                owner[str(rel)] = whl.name
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(zf.read(info))
                if (info.external_attr >> 16) & 0o111 or rel.suffix == ".so":
                    dest.chmod(0o755)


def trim_and_strip(target: Path, strip: bool) -> tuple[int, int]:
    """Remove never-loaded files; strip shared objects. Returns (bytes trimmed, bytes saved by strip)."""
    trimmed_bytes = stripped = 0
    for p in sorted(target.rglob("*")):
        if not p.is_file():
            continue
        rel = PurePosixPath(p.relative_to(target).as_posix())
        if trimmed(rel):
            trimmed_bytes += p.stat().st_size
            p.unlink()
        elif strip and (p.suffix == ".so" or ".so." in p.name):
            before = p.stat().st_size
            subprocess.run(["strip", "--strip-unneeded", str(p)], check=True)
            stripped += before - p.stat().st_size
    for d in sorted((d for d in target.rglob("*") if d.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    return trimmed_bytes, stripped


def normalize(target: Path) -> None:
    for p in sorted(target.rglob("*"), reverse=True):
        mode = p.stat().st_mode
        if p.is_dir():
            p.chmod(0o755)
        else:
            p.chmod(0o755 if mode & stat.S_IXUSR else 0o644)
        os.utime(p, (EPOCH, EPOCH), follow_symlinks=False)
    os.utime(target, (EPOCH, EPOCH))


def write_zip(target: Path, zip_path: Path) -> str:
    """A reproducible zip of ``target`` (sorted entries, fixed dates and modes); returns its sha256."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for p in sorted(target.rglob("*")):
            if not p.is_file():
                continue
            info = zipfile.ZipInfo(p.relative_to(target).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = ((0o100755 if p.stat().st_mode & stat.S_IXUSR else 0o100644) << 16)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, p.read_bytes())
    return hashlib.sha256(zip_path.read_bytes()).hexdigest()


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def compile_pyc(target: Path, own: Iterable[PurePosixPath]) -> None:
    """Byte-compile with python3.12: FC's /code is read-only, so without .pyc every cold start compiles every
    imported module from source. Vendored libraries ship sourceless (a legacy-location .pyc replaces each .py:
    the package stays small); the project's own modules keep their source, with unchecked-hash .pyc beside."""
    base_py = Path(sys.base_prefix) / "bin" / "python3"
    version = subprocess.run([str(base_py), "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if version != "True":  # a .pyc is tied to its minor version: any other would be dead weight on FC
        raise SystemExit("--compile needs a python3.12 interpreter (FC's runtime)")
    mine = {target / rel for rel in own}
    vendored = [p for p in sorted(target.rglob("*.py")) if p not in mine]
    subprocess.run([str(base_py), "-m", "compileall", "-q", "-b", "-j", "0", "--invalidation-mode",
                    "unchecked-hash", *map(str, vendored)], check=True)
    for p in vendored:
        if p.with_suffix(".pyc").exists():
            p.unlink()
    subprocess.run([str(base_py), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                    *(str(p) for p in sorted(mine) if p.suffix == ".py")], check=True)


def build(out: Path, strip: bool = True, pyc: bool = False, offline: bool = False) -> Path:
    if strip and shutil.which("strip") is None:
        print("warning: no `strip` (binutils): shared objects keep their debug symbols (+~18 MB)")
        strip = False
    with tempfile.TemporaryDirectory(prefix="permit-ocr-package-") as td:
        tmp = Path(td)
        wheels_dir, stage = tmp / "wheels", tmp / "function"
        for d in (wheels_dir, stage):
            d.mkdir()
        wheels = download(FUNCTION_DIR / "requirements.txt", wheels_dir, offline=offline)
        print(f"  {len(wheels)} wheels: {', '.join(w.name.split('-')[0] for w in wheels)}")
        unpack(wheels, stage)
        raw = size_of(stage)
        cut, saved = trim_and_strip(stage, strip)
        for rel in function_files():  # the project's own code last: it must win over nothing, and it is checked
            dest = stage / rel
            if dest.exists():
                raise SystemExit(f"{rel}: also shipped by a wheel")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(FUNCTION_DIR / rel, dest)
        write_manifest(wheels, stage)
        if pyc:
            compile_pyc(stage, function_files())
        normalize(stage)
        print(f"  vendored {raw / 1e6:.1f} MB; trimmed {cut / 1e6:.1f} MB, strip saved {saved / 1e6:.1f} MB")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(stage, out, copy_function=shutil.copy2)
        normalize(out)
    return out


def smoke(out: Path) -> None:
    """Import and one invocation from ``out`` with a stdlib-only interpreter, against the local stack."""
    sys.path.insert(0, str(REPO / "bench"))
    import _measure as m

    base_py = Path(sys.base_prefix) / "bin" / "python3"
    argv = [str(base_py), "-I", "-S", "-B", "-c",
            f"import sys; sys.path.insert(0, {str(out)!r}); import index, alibabacloud_ocr_api20210707.client, "
            "alibabacloud_ocr_api20210707.models, alibabacloud_tea_util.models, mns.account; print('imports ok')"]
    subprocess.run(argv, check=True)
    with tempfile.TemporaryDirectory(prefix="permit-ocr-smoke-") as td, m.StackProcess(Path(td) / "root") as stack:
        img = Path(td) / "a.png"
        img.write_bytes(m.truth_png())
        key = "uploads/smoke.png"
        event = m.oss_event(stack.bucket, [(key, *stack.put(key, img))])
        for mode in ("url", "body"):
            if mode == "body":
                key = "uploads/smoke-body.png"
                event = m.oss_event(stack.bucket, [(key, *stack.put(key, img))])
            env = {**stack.env, "IMAGE_SOURCE": mode, "PERMIT_OCR_FUNCTION_DIR": str(out)}
            r = m.run_invoke_child("index", event, env, Path(td), python=[str(base_py), "-S", "-B"])
            if '"result": 1' not in r["status"]:
                raise SystemExit(f"smoke invocation ({mode}) failed: {r}")
            print(f"  smoke {mode}: {r['status']}, peak RSS {r['hwm_mb']:.0f} MB, {r['wall_s']:.2f} s cold")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DIST / "function")
    ap.add_argument("--zip", action="store_true", help="also write dist/function.zip and print its sha256")
    ap.add_argument("--no-strip", action="store_true", help="keep debug symbols in shared objects")
    ap.add_argument("--no-compile", action="store_true",
                    help="ship sources only (every cold start on FC then compiles every imported module)")
    ap.add_argument("--smoke", action="store_true", help="import and invoke from the result (local stack)")
    ap.add_argument("--offline", action="store_true", help="use var/wheelhouse only; never the network")
    ap.add_argument("--fetch", action="store_true", help="only fill var/wheelhouse (network), then exit")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless --out is the package of function/ as it is now (no build)")
    args = ap.parse_args(argv)
    if args.fetch:
        fetch(FUNCTION_DIR / "requirements.txt")
        print(f"{WHEELHOUSE.relative_to(REPO)}: {len(list(WHEELHOUSE.glob('*.whl')))} wheels")
        return 0
    if args.check:
        why = stale(args.out)
        print(f"package: {why or 'current'}", file=sys.stderr if why else sys.stdout)
        return 1 if why else 0
    print(f"building {args.out} from function/ (wheels from {WHEELHOUSE.relative_to(REPO)})")
    out = build(args.out, strip=not args.no_strip, pyc=not args.no_compile, offline=args.offline)
    size = size_of(out)
    files = sum(1 for p in out.rglob("*") if p.is_file())
    print(f"{out.relative_to(REPO) if out.is_relative_to(REPO) else out}: {size / 1e6:.1f} MB unzipped ({files} files; "
          f"goal <= 30 MB: {'met' if size <= 30e6 else 'NOT met'})")
    if args.zip:
        zip_path = out.with_suffix(".zip")
        digest = write_zip(out, zip_path)
        print(f"{zip_path.name}: {zip_path.stat().st_size / 1e6:.1f} MB, sha256 {digest}")
    if args.smoke:
        smoke(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
