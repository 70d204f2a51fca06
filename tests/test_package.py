"""bench/package.py's file selection, unpacking and zip, without downloading anything."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path, PurePosixPath
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_package", REPO / "bench" / "package.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


package = _load()


def test_function_files_are_the_deployed_code_only() -> None:
    files = {str(p) for p in package.function_files()}
    assert {"index.py", "requirements.txt", "permit_ocr/__init__.py", "permit_ocr/handler.py"} <= files
    on_disk = {p.relative_to(REPO / "function").as_posix() for p in (REPO / "function").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert on_disk <= files  # every module of function/ ships
    assert not any(f.startswith(("tests/", "local/", "bench/", "permit_ocr_local/")) for f in files)
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)


def test_function_files_skip_caches(tmp_path: Path) -> None:
    (tmp_path / "permit_ocr" / "__pycache__").mkdir(parents=True)
    (tmp_path / "permit_ocr" / "__pycache__" / "a.cpython-312.pyc").write_bytes(b"x")
    (tmp_path / "permit_ocr" / "a.py").write_text("")
    (tmp_path / ".mypy_cache").mkdir()
    (tmp_path / ".mypy_cache" / "x.json").write_text("{}")
    (tmp_path / "index.py").write_text("")
    assert package.function_files(tmp_path) == [PurePosixPath("index.py"), PurePosixPath("permit_ocr/a.py")]


@pytest.mark.parametrize(("path", "cut"), [
    ("Crypto/SelfTest/Cipher/test_AES.py", True),
    ("websocket/tests/test_abnf.py", True),
    ("aiohttp/_http_parser.pyx", True),
    ("multidict/_multidict.c", True),
    ("yarl/__init__.pyi", True),
    ("aiohttp/_http_parser.cpython-312-x86_64-linux-gnu.so", False),
    ("alibabacloud_ocr_api20210707/client.py", False),
    ("requests-2.34.2.dist-info/RECORD", False),
    ("certifi/cacert.pem", False),
    ("PIL/_avif.cpython-312-x86_64-linux-gnu.so", True),
    ("PIL/_imagingft.cpython-312-x86_64-linux-gnu.so", True),
    ("pillow.libs/libavif-c6062d5f.so.16.4.2", True),
    ("pillow.libs/libfreetype-57f805ba.so.6.20.6", True),
    ("pillow.libs/libpng16-1d1ba958.so.16.58.0", True),
    ("PIL/_imaging.cpython-312-x86_64-linux-gnu.so", False),
    ("PIL/_imagingcms.cpython-312-x86_64-linux-gnu.so", False),
    ("PIL/_webp.cpython-312-x86_64-linux-gnu.so", False),
    ("PIL/AvifImagePlugin.py", False),  # imports _avif in a try: its absence only turns AVIF off
    ("pillow.libs/libjpeg-6dc8d115.so.62.4.0", False),
    ("pillow.libs/libxcb-9065bb12.so.1.1.0", False),  # _imaging links it
    ("pi_heif.libs/libheif-7a3e919c.so.1.23.0", False),
    ("pypdfium2_raw/libpdfium.so", False),
])
def test_trim_rules(path: str, cut: bool) -> None:
    assert package.trimmed(PurePosixPath(path)) is cut


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_unpack_places_purelib_and_skips_scripts(tmp_path: Path) -> None:
    whl = _wheel(tmp_path / "a-1.0-py3-none-any.whl", {
        "a/__init__.py": b"", "a-1.0.dist-info/RECORD": b"", "a-1.0.data/purelib/b.py": b"",
        "a-1.0.data/scripts/tool": b"#!/bin/sh"})
    out = tmp_path / "out"
    package.unpack([whl], out)
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert got == ["a-1.0.dist-info/RECORD", "a/__init__.py", "b.py"]


def test_unpack_refuses_two_owners_of_one_file(tmp_path: Path) -> None:
    a = _wheel(tmp_path / "crcmod-1.7-py3-none-any.whl", {"crcmod/crcmod.py": b"1"})
    b = _wheel(tmp_path / "crcmod_plus-2.3-py3-none-any.whl", {"crcmod/crcmod.py": b"2"})
    with pytest.raises(SystemExit, match="shipped by both"):
        package.unpack([a, b], tmp_path / "out")


def test_zip_is_reproducible(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "m.py").write_text("x = 1\n")
    (src / "index.py").write_text("")
    package.normalize(src)
    first = package.write_zip(src, tmp_path / "a.zip")
    (src / "index.py").touch()  # a new mtime must not change the archive
    package.normalize(src)
    assert package.write_zip(src, tmp_path / "b.zip") == first
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.namelist() == ["index.py", "pkg/m.py"]


def test_a_package_built_from_other_sources_is_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "function"
    (src / "permit_ocr").mkdir(parents=True)
    (src / "index.py").write_text("x = 1\n")
    monkeypatch.setattr(package, "FUNCTION_DIR", src)
    monkeypatch.setattr(package.source_digest, "__defaults__", (src,))
    out = tmp_path / "dist"
    assert package.stale(out) is not None  # missing
    out.mkdir()
    package.write_manifest([], out)
    assert package.stale(out) is None
    (src / "index.py").write_text("x = 2\n")  # edited after the build
    assert "other sources" in str(package.stale(out))


def test_distribution_of_reads_name_version_and_importable_top_levels(tmp_path: Path) -> None:
    whl = _wheel(tmp_path / "a_b-1.2-py3-none-any.whl", {
        "a_b/__init__.py": b"", "single.py": b"", "_native.cpython-312-x86_64-linux-gnu.so": b"",
        "a-stubs/__init__.pyi": b"", "a_b-1.2.dist-info/METADATA": b"Name: a-b\nVersion: 1.2\n",
        "a_b-1.2.data/purelib/extra/__init__.py": b""})
    assert package.distribution_of(whl) == {"name": "a-b", "version": "1.2",
                                            "modules": ["_native", "a_b", "extra", "single"]}
