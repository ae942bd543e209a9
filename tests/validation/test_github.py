"""GitHub's REST API description (npm ``@octokit/openapi``, about 1,200 operations, 13 MB of
JSON, OpenAPI 3.0) loads, compiles and routes every operation to its own template.

``npm ci`` installs the pinned package into ``github/node_modules`` the first time (from the
committed lock file; later runs reuse it). Start-up time (load, check, compile) is printed.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from bastion.validation.compiler import CompiledApi, compile_api
from bastion.validation.document import load_api
from bastion.validation.guard import ValidationGuard
from tests.validation.helpers import allowed, config_for, json_request, pointers, request

PACKAGE_DIR = Path(__file__).parent / "github"
DESCRIPTION = (
    PACKAGE_DIR / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
)


def install_description() -> Path:
    """``npm ci`` once per checkout (a lock file guards concurrent runs)."""
    if DESCRIPTION.exists():
        return DESCRIPTION
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("the GitHub description test needs npm on PATH (Node.js 18+)")
    with open(Path(tempfile.gettempdir()) / "bastion-octokit-npm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not DESCRIPTION.exists():
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"],
                cwd=PACKAGE_DIR,
                check=True,
                timeout=600,
            )
    return DESCRIPTION


@pytest.fixture(scope="module")
def github(pytestconfig: pytest.Config) -> tuple[Path, CompiledApi, dict[str, Any]]:
    path = install_description()
    started = time.perf_counter()
    api = load_api(path)
    loaded = time.perf_counter()
    compiled = compile_api(api, strict=True)
    done = time.perf_counter()
    report = (
        f"GitHub REST description ({path.stat().st_size / 1e6:.1f} MB, {compiled.operations}"
        f" operations): loaded and checked in {(loaded - started) * 1000:.0f} ms, compiled in"
        f" {(done - loaded) * 1000:.0f} ms, start-up {(done - started) * 1000:.0f} ms"
    )
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n{report}")  # shown even when output is captured
    return path, compiled, api.document


def _sample(schema: Any) -> str:
    """A path value the parameter's schema accepts, unlike any literal segment of the API."""
    if isinstance(schema, dict):
        if schema.get("enum"):
            return str(schema["enum"][0])
        if schema.get("type") == "integer":
            return "4242"
    return "sample-value-7"


def test_every_operation_routes_to_its_own_template(
    github: tuple[Path, CompiledApi, dict[str, Any]],
) -> None:
    _, compiled, document = github
    checked = 0
    for template, item in document["paths"].items():
        found = compiled.tree.match(_concrete(template, item, document))
        assert found is not None, template
        entry, _ = found
        methods = {m.upper() for m in item if m in ("get", "put", "post", "patch", "delete")}
        # /orgs/{org}/attestations/{attestation_id} (DELETE) and .../{subject_digest} (GET)
        # share a node of the tree; each method still finds its own operation
        for method in methods:
            assert entry.operations[method].template == template, (method, template)
        checked += len(methods)
    assert checked == compiled.operations >= 1000


def _concrete(template: str, item: dict[str, Any], document: dict[str, Any]) -> str:
    values: dict[str, str] = {}
    for op in item.values():
        if not isinstance(op, dict):
            continue
        for param in op.get("parameters", []):
            if "$ref" in param:
                param = document["components"]["parameters"][param["$ref"].rsplit("/", 1)[1]]
            if param.get("in") == "path":
                values[param["name"]] = _sample(param.get("schema"))
    path = template
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


def test_real_requests_are_validated(github: tuple[Path, CompiledApi, dict[str, Any]]) -> None:
    path, compiled, _ = github
    guard = ValidationGuard(config_for(path, strict=True), compiled)
    issue = {"title": "Found a bug", "body": "Steps...", "labels": ["bug"]}
    assert allowed(guard.check(json_request("POST", "/repos/octo/hello/issues", issue)))
    assert pointers(guard.check(json_request("POST", "/repos/octo/hello/issues", {"body": "x"})))
    assert pointers(
        guard.check(json_request("POST", "/repos/octo/hello/issues", {**issue, "admin": True}))
    ) == {"/body/admin": "is not a documented property"}
    assert allowed(guard.check(request("GET", "/repos/octo/hello/issues?state=open&per_page=50")))
    assert pointers(guard.check(request("GET", "/repos/octo/hello/issues?state=gone"))) == {
        "/query/state": "expected one of the documented values ('open', 'closed', 'all')"
    }
    assert allowed(guard.check(request("GET", "/users/octocat")))
    denied = guard.check(request("DELETE", "/users/octocat"))
    assert getattr(denied, "status", None) == 405
    assert getattr(guard.check(request("GET", "/no/such/thing")), "status", None) == 404
