"""s.yaml, s.eventbridge.yaml and s.selfhosted.yaml as the real Serverless Devs CLI renders them (`s preview -t FILE -o
json`, @serverless-devs/s 3.1.10, installed by `make test` into var/serverless-devs; offline: only deploy-type
commands need its component registry) are what the project's own deployment model (fcruntime/deployment.py)
resolves: the same document, so the same triggers, environment and settings run locally, are checked by check-config
and go into the rendered RAM policy. Without node the tests skip and say why; CI (.ci/run) requires them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from permit_ocr_local.fcruntime.deployment import CHECK_ACCOUNT_ID, deployment_of, load_s_yaml, resolve

REPO = Path(__file__).resolve().parents[1]
S_CLI = REPO / "var" / "serverless-devs" / "node_modules" / ".bin" / "s"
PINNED = "@serverless-devs/s: 3.1.10"
# how `s preview` prints ${config("AccountID")}, which only a configured access can answer
ACCOUNT_EXPR = "${config('AccountID')}"


@pytest.fixture(scope="module")
def s_cli() -> Path:
    why = ("node is not installed (apt-get install nodejs npm, then make test)" if shutil.which("node") is None
           else None if S_CLI.exists() else "the Serverless Devs CLI is not installed: make test installs it into "
           "var/serverless-devs")
    if why is not None:
        if os.environ.get("PERMIT_OCR_REQUIRE_SDEVS") == "1":
            pytest.fail(f"s preview tests required (CI), but {why}")
        pytest.skip(why)
    return S_CLI


def s(cli: Path, home: Path, *args: str, cwd: Path = REPO) -> str:
    """Run the CLI with its own HOME (it keeps ~/.s config and logs), stdout back; its root-user warning and
    other log lines come before the JSON."""
    ran = subprocess.run([str(cli), *args], cwd=cwd, env={**os.environ, "HOME": str(home)}, capture_output=True,
                         text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    return ran.stdout


def preview(cli: Path, home: Path, template: Path) -> dict[str, Any]:
    out = s(cli, home, "preview", "-t", str(template), "-o", "json", cwd=template.parent)
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("{"))
    rendered: dict[str, Any] = json.loads("\n".join(lines[start:]).replace(ACCOUNT_EXPR, CHECK_ACCOUNT_ID))
    return rendered


def ours(template: Path) -> dict[str, Any]:
    doc, unresolved = resolve(load_s_yaml(template), CHECK_ACCOUNT_ID)
    assert unresolved == []
    return doc


def test_the_cli_is_the_pinned_version(s_cli: Path, tmp_path: Path) -> None:
    assert PINNED in s(s_cli, tmp_path, "-v")


@pytest.mark.parametrize("name", ["s.yaml", "s.eventbridge.yaml"])
def test_the_real_cli_renders_the_deployment_files_exactly_as_our_model_resolves_them(
        s_cli: Path, tmp_path: Path, name: str) -> None:
    rendered, resolved = preview(s_cli, tmp_path, REPO / name), ours(REPO / name)
    assert rendered == resolved  # vars, anchors and merge keys, ${this.props...}, types of lone ${...}
    theirs, mine = deployment_of(rendered), deployment_of(resolved)
    assert theirs == mine  # triggers, environment, timeout, memory, async retries, bucket, prefix
    kinds = {t.kind for t in mine.triggers}
    assert kinds == ({"oss"} if name == "s.yaml" else {"eventbridge"})
    assert mine.env["SOURCE_BUCKETS"] == mine.bucket and mine.timeout == 120 and mine.max_async_retries == 2
    if name == "s.yaml":
        assert sorted(t.suffix for t in mine.triggers) == sorted(mine.env["IMAGE_SUFFIXES"].split(","))
        assert {t.events for t in mine.triggers} == {("oss:ObjectCreated:PutObject", "oss:ObjectCreated:PostObject",
                                                      "oss:ObjectCreated:CompleteMultipartUpload")}


def test_the_selfhosted_variant_renders_as_our_model_resolves_both_functions(s_cli: Path, tmp_path: Path) -> None:
    from permit_ocr_local.fcruntime.deployment import engine_resource, function_resource

    rendered, resolved = preview(s_cli, tmp_path, REPO / "s.selfhosted.yaml"), ours(REPO / "s.selfhosted.yaml")
    assert rendered == resolved
    assert deployment_of(rendered) == deployment_of(resolved)
    assert function_resource(rendered) == function_resource(resolved)
    engine = engine_resource(rendered)
    assert engine is not None and engine == engine_resource(resolved)
    main = function_resource(rendered)[1]
    assert engine[1]["functionName"] == main["environmentVariables"]["ENGINE_FUNCTION"] == "permit-ocr-engine"
    assert (engine[1]["memorySize"], engine[1]["internetAccess"], engine[1].get("triggers")) == (1024, False, None)
    assert rendered["resources"]["permit-ocr-engine"]["actions"]["pre-deploy"][0]["run"].startswith(
        "make package-engine")


def test_a_template_with_every_expression_our_model_resolves_renders_the_same(
        s_cli: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The expressions a user may add to s.yaml: vars built from vars, a lone ${...} keeping its type (number,
    boolean, list, mapping), ${this.props.x}, both quotings of config("AccountID"), ${env('NAME')} from the
    deploying shell, an anchor merged with an override. (A ${this.props.x} whose value holds ${this.props.y}
    fails in the real CLI itself, so it is not here.)"""
    template = tmp_path / "s.yaml"
    template.write_text("""edition: 3.0.0
name: probe
access: default
vars:
  region: cn-shanghai
  bucket: b-${vars.region}
  nested: ${vars.bucket}/x
  n: 5
  quoted: '5'
  flag: true
  empty: ''
  list: [a, b]
  map: {k: v}
resources:
  fn:
    component: fc3
    props:
      region: ${vars.region}
      functionName: f-${this.props.region}
      timeout: ${vars.n}
      inString: x${vars.n}
      quoted: ${vars.quoted}
      flag: ${vars.flag}
      empty: ${vars.empty}
      list: ${vars.list}
      map: ${vars.map}
      nested: ${vars.nested}
      double: ${config("AccountID")}
      single: ${config('AccountID')}
      fromShell: ${env('PERMIT_OCR_PREVIEW_PROBE')}
      base: &base {x: 1, y: 2}
      merged: {<<: *base, y: 3}
""")
    monkeypatch.setenv("PERMIT_OCR_PREVIEW_PROBE", "from the shell")
    assert preview(s_cli, tmp_path / "home", template) == ours(template)
