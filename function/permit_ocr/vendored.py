"""The packaged SDKs must be the ones that run.

FC's python3.12 runtime ships its own Alibaba Cloud SDKs (oss2, Tea packages, the MNS open API). Where its
site-packages sit before the code directory on ``sys.path``, or where the runtime imported one of them before
our code, ``import alibabacloud_tea_openapi`` would silently load the runtime's copy instead of the version the
package pins and the tests ran. ``prefer`` (called by index.py before anything else is imported) puts the code
directory first and drops foreign copies already in ``sys.modules``; ``check`` (called once by the initializer)
proves every vendored module in use was loaded from the package, and returns the versions for the log.

The list of vendored distributions, their versions and top-level modules is ``vendored.json``, written by
``bench/package.py`` at build time. Without it (running from the source tree, tests) there is nothing to check.
Stdlib only: this runs before any vendored module may be imported.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, MutableMapping, MutableSequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

MANIFEST = "vendored.json"
CODE_DIR = Path(__file__).resolve().parent.parent  # /code on FC: index.py, permit_ocr/ and the vendored wheels


@dataclass(frozen=True)
class Vendored:
    name: str
    version: str
    modules: tuple[str, ...]


@dataclass
class Report:
    packaged: bool
    versions: dict[str, str] = field(default_factory=dict)  # distribution -> version, of modules in use
    foreign: dict[str, str] = field(default_factory=dict)  # module -> the file it was loaded from instead


class ForeignSdk(RuntimeError):
    """A vendored module was loaded from outside the package: the pinned version is not the one running."""


def load_manifest(code_dir: Path = CODE_DIR) -> list[Vendored] | None:
    try:
        doc = json.loads((code_dir / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return [Vendored(d["name"], d["version"], tuple(d["modules"])) for d in doc["distributions"]]


def _origin(module: ModuleType) -> str | None:
    file = getattr(module, "__file__", None)
    if file:
        return str(file)
    paths = list(getattr(module, "__path__", []) or [])  # namespace packages have no __file__
    return str(paths[0]) if paths else None


def _inside(path: str | None, code_dir: Path) -> bool:
    if path is None:
        return False
    try:
        return Path(path).resolve().is_relative_to(code_dir)
    except OSError:
        return False


def foreign_modules(modules: Mapping[str, ModuleType], names: Iterable[str], code_dir: Path) -> dict[str, str]:
    """Loaded modules (``names`` and their submodules) whose file is not under ``code_dir``: name -> file."""
    tops = set(names)
    out = {}
    for name, module in modules.items():
        if module is not None and name.split(".", 1)[0] in tops:
            where = _origin(module)
            if not _inside(where, code_dir):
                out[name] = where or "<built-in>"
    return out


def prefer(code_dir: Path = CODE_DIR, path: MutableSequence[str] | None = None,
           modules: MutableMapping[str, ModuleType] | None = None) -> list[str]:
    """Put ``code_dir`` first on ``sys.path`` and forget foreign copies of vendored modules already imported.
    Returns the names forgotten (the runtime keeps its own references; our imports now load the package's)."""
    path = sys.path if path is None else path
    modules = sys.modules if modules is None else modules
    manifest = load_manifest(code_dir)
    if manifest is None:
        return []
    here = str(code_dir)
    while here in path:
        path.remove(here)
    path.insert(0, here)
    names = [m for d in manifest for m in d.modules]
    dropped = sorted(foreign_modules(modules, names, code_dir))
    for name in dropped:
        del modules[name]
    return dropped


def check(code_dir: Path = CODE_DIR, modules: Mapping[str, Any] | None = None) -> Report:
    """Which vendored distributions are in use and at which version; every one must come from the package."""
    modules = sys.modules if modules is None else modules
    manifest = load_manifest(code_dir)
    if manifest is None:
        return Report(packaged=False)
    report = Report(packaged=True)
    for dist in manifest:
        used = [m for m in dist.modules if m in modules]
        if not used:
            continue
        report.foreign.update(foreign_modules({m: modules[m] for m in used}, used, code_dir))
        report.versions[dist.name] = dist.version
    return report


def verify(code_dir: Path = CODE_DIR) -> Report:
    """``check``, raising ``ForeignSdk`` (an initializer failure, so FC retries on a new instance) on a mismatch."""
    report = check(code_dir)
    if report.foreign:
        where = ", ".join(f"{m} from {f}" for m, f in sorted(report.foreign.items()))
        raise ForeignSdk(f"vendored SDK modules were loaded from outside the package: {where}")
    return report
