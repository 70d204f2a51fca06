"""The packaged SDKs win over the copies FC's python3.12 runtime ships: the package build records them, index.py
puts the code directory first and forgets foreign copies already imported, and the initializer proves it and
logs the versions in use. The package converts every kind of upload with only the native libraries it ships
(the build cuts Pillow's AVIF, font and Tk parts)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from test_package import package  # bench/package.py, loaded once

from permit_ocr import vendored

REPO = Path(__file__).resolve().parents[2]
PINNED = dict(line.split("==") for line in (REPO / "function" / "requirements.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#"))
SHADOWED = ("alibabacloud_tea_openapi", "alibabacloud_ocr_api20210707", "alibabacloud_oss_v2", "Tea", "orjson",
            "alibabacloud_tea_util", "mns")


def _module(name: str, file: Path) -> ModuleType:
    m = ModuleType(name)
    m.__file__ = str(file)
    return m


def _code_dir(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / vendored.MANIFEST).write_text(json.dumps({"distributions": [
        {"name": "alibabacloud-tea-openapi", "version": "0.4.6", "modules": ["alibabacloud_tea_openapi"]},
        {"name": "orjson", "version": "3.13.0", "modules": ["orjson"]}]}))
    return code


def test_prefer_puts_the_code_dir_first_and_forgets_foreign_copies(tmp_path: Path) -> None:
    code = _code_dir(tmp_path)
    runtime = tmp_path / "runtime-site-packages"
    path = [str(runtime), str(code)]
    modules = {"alibabacloud_tea_openapi": _module("a", runtime / "alibabacloud_tea_openapi" / "__init__.py"),
               "alibabacloud_tea_openapi.client": _module("b", runtime / "alibabacloud_tea_openapi" / "client.py"),
               "orjson": _module("o", code / "orjson" / "__init__.py"), "json": json}
    forgotten = vendored.prefer(code, path, modules)  # type: ignore[arg-type]
    assert path == [str(code), str(runtime)]
    assert forgotten == ["alibabacloud_tea_openapi", "alibabacloud_tea_openapi.client"]
    assert set(modules) == {"orjson", "json"}  # ours and unrelated modules stay


def test_check_names_a_vendored_module_loaded_from_elsewhere(tmp_path: Path) -> None:
    code = _code_dir(tmp_path)
    modules = {"alibabacloud_tea_openapi": _module("a", tmp_path / "site" / "alibabacloud_tea_openapi.py"),
               "orjson": _module("o", code / "orjson" / "__init__.py")}
    report = vendored.check(code, modules)
    assert report.packaged and report.versions == {"alibabacloud-tea-openapi": "0.4.6", "orjson": "3.13.0"}
    assert list(report.foreign) == ["alibabacloud_tea_openapi"]


def test_without_a_manifest_there_is_nothing_to_check(tmp_path: Path) -> None:
    assert vendored.check(tmp_path, {}) == vendored.Report(packaged=False)
    assert vendored.prefer(tmp_path, [], {}) == []


def _shadow_site(root: Path) -> Path:
    """A site-packages with older, conflicting copies of the SDKs (as the runtime's own would be)."""
    site = root / "runtime-site-packages"
    for name in SHADOWED:
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text("SHADOW = True\n__version__ = '0.0.1'\n")
        (site / f"{name}-0.0.1.dist-info").mkdir()
        (site / f"{name}-0.0.1.dist-info" / "METADATA").write_text(f"Name: {name}\nVersion: 0.0.1\n")
    return site


CHILD = """
import json, sys
sys.path[:0] = [SITE, PKG]  # the runtime's site-packages BEFORE the code directory
import alibabacloud_tea_openapi, orjson  # and the runtime imported its own copies before our code ran
assert alibabacloud_tea_openapi.SHADOW and orjson.SHADOW
import index
class Fn: name, handler, memory, timeout = "permit-ocr", "index.handler", 128, 60
class Ctx: request_id, function, region, account_id = "init-1", Fn(), "cn-hangzhou", "1"
index.initialize(Ctx())
print(json.dumps({m: sys.modules[m].__file__ for m in sorted(sys.modules) if m.split(".")[0] in MODS
                  and "." not in m}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(package.build(tmp_path_factory.mktemp("package") / "function", strip=False, pyc=True, offline=True))


@pytest.mark.skipif(sys.version_info[:2] != (3, 12), reason="the package is built for FC's python3.12")
def test_packaged_index_imports_the_pinned_sdks_over_conflicting_older_copies(tmp_path: Path, built: Path) -> None:
    out = built
    site = _shadow_site(tmp_path)
    script = (CHILD.replace("SITE", repr(str(site))).replace("PKG", repr(str(out)))
              .replace("MODS", repr(set(SHADOWED))))
    env = {"SOURCE_BUCKETS": "permit-ocr-demo", "OSS_REGION": "cn-hangzhou", "LOG_LEVEL": "info", "PATH": "/usr/bin"}
    base_python = Path(sys.base_prefix) / "bin" / "python3"
    ran = subprocess.run([str(base_python), "-I", "-S", "-B", "-c", script], env=env, capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    lines = ran.stdout.strip().splitlines()
    files = json.loads(lines[-1])
    assert files and all(Path(f).is_relative_to(out) for f in files.values()), files
    [logged] = [json.loads(line) for line in lines[:-1] if '"vendored SDKs"' in line]
    versions = logged["versions"]
    assert {"alibabacloud-ocr-api20210707", "alibabacloud-tea-openapi", "alibabacloud-oss-v2", "orjson"} <= set(
        versions)
    for name, version in versions.items():
        if name in PINNED:
            assert version == PINNED[name], name
    assert "alibabacloud_tea_openapi" in logged["replaced"] and "orjson" in logged["replaced"]


CONVERT_CHILD = """
import json, sys
sys.path.insert(0, PKG)
from permit_ocr import convert, pdf
from permit_ocr.precheck import check_limits, inspect
sent = {}
for path in PATHS:
    data = open(path, "rb").read()
    info = check_limits(inspect(data, len(data)), len(data), 10 << 20, 40 << 20)
    if info.format == "pdf":
        out = pdf.convert_page(pdf.open_pdf(data, 10), 1, info, 10 << 20, 128, len(data))
    else:
        out = convert.convert_image(data, info, 10 << 20, 128)
    sent[path.rsplit("/", 1)[-1]] = [list(info.convert), out.body[:3].hex(), out.info.width]
print(json.dumps(sent))
"""


@pytest.mark.skipif(sys.version_info[:2] != (3, 12), reason="the package is built for FC's python3.12")
def test_the_package_converts_every_kind_of_upload_with_the_native_libraries_it_ships(tmp_path: Path,
                                                                                     built: Path) -> None:
    from PIL import Image

    card = Image.new("RGB", (900, 600), (200, 180, 160))
    uploads = {"photo.heic": (REPO / "samples" / "macao-phone.heic").read_bytes(),
               "scan.pdf": (REPO / "samples" / "two-permits-scan.pdf").read_bytes()}
    for name, im, params in [("alpha.png", card.convert("RGBA"), {}), ("cmyk.jpg", card.convert("CMYK"), {}),
                             ("deep.tif", card.convert("I;16"), {}), ("alpha.webp", card.convert("RGBA"), {}),
                             ("anim.gif", card, {"save_all": True, "append_images": [card.rotate(90)]}),
                             ("lab.tif", card.convert("LAB"), {"compression": "tiff_lzw"}),
                             ("wide.png", card.resize((9000, 1400)), {})]:
        buf = io.BytesIO()
        im.save(buf, name.rsplit(".", 1)[1].replace("jpg", "jpeg").replace("tif", "tiff"), **params)
        uploads[name] = buf.getvalue()
    paths = []
    for name, data in uploads.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    script = CONVERT_CHILD.replace("PKG", repr(str(built))).replace("PATHS", repr(paths))
    base_python = Path(sys.base_prefix) / "bin" / "python3"
    ran = subprocess.run([str(base_python), "-I", "-S", "-B", "-c", script], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    sent = json.loads(ran.stdout)
    assert set(sent) == set(uploads)
    assert all(jpeg == "ffd8ff" for _, jpeg, _ in sent.values()), sent
    assert sent["photo.heic"][0] == ["heif"] and sent["scan.pdf"][0] == ["pdf"] and sent["wide.png"][2] == 4096
