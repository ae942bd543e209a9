"""Builds bastion, compiling the gateway engine's hot path with mypyc when it can.

The engine is typed Python (mypy --strict); mypyc compiles those same modules to C extensions,
which cuts the engine's per-request Python time by about a third (``bench/micro_engine.py``).
The compiled modules behave exactly as the source, which stays the reference: with no C compiler,
with ``BASTION_PURE_PYTHON=1``, or for an editable install (where compiled copies would shadow
later edits), the pure-Python modules are installed instead: same behaviour, slower.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    "src/bastion/auth/apikey.py",
    "src/bastion/auth/bearer.py",
    "src/bastion/auth/jwt/cache.py",
    "src/bastion/auth/keys/format.py",
    "src/bastion/auth/keys/hashing.py",
    "src/bastion/auth/keys/index.py",
    "src/bastion/auth/objects.py",
    "src/bastion/auth/placement.py",
    "src/bastion/auth/requirements.py",
    "src/bastion/engine/context.py",
    "src/bastion/engine/dispatch.py",
    "src/bastion/engine/exchange.py",
    "src/bastion/engine/headers.py",
    "src/bastion/engine/http11.py",
    "src/bastion/engine/pool.py",
    "src/bastion/engine/protocol.py",
    "src/bastion/engine/proxy.py",
    "src/bastion/engine/responses.py",
    "src/bastion/engine/upstream.py",
    "src/bastion/observability/traffic.py",
    "src/bastion/observability/events.py",
    "src/bastion/observability/ecs.py",
    "src/bastion/observability/redact.py",
    "src/bastion/observability/writer.py",
    "src/bastion/observability/detect/enumeration.py",
    "src/bastion/observability/detect/guard.py",
    "src/bastion/observability/detect/lru.py",
    "src/bastion/observability/detect/monitor.py",
    "src/bastion/observability/detect/newcountry.py",
    "src/bastion/observability/detect/payload.py",
    "src/bastion/observability/detect/spikes.py",
    "src/bastion/observability/detect/stuffing.py",
    "src/bastion/observability/detect/tee.py",
    "src/bastion/pipeline/chain.py",
    "src/bastion/pipeline/decisions.py",
    "src/bastion/pipeline/forwarding.py",
    "src/bastion/pipeline/identity.py",
    "src/bastion/pipeline/observer.py",
    "src/bastion/pipeline/request.py",
    "src/bastion/pipeline/upstream_headers.py",
    "src/bastion/pipeline/routing.py",
    "src/bastion/ratelimit/algorithms.py",
    "src/bastion/ratelimit/core.py",
    "src/bastion/ratelimit/guard.py",
    "src/bastion/ratelimit/headers.py",
    "src/bastion/ratelimit/login.py",
    "src/bastion/ratelimit/policy.py",
    "src/bastion/ratelimit/storage/memory.py",
    "src/bastion/validation/injection/command.py",
    "src/bastion/validation/injection/engine.py",
    "src/bastion/validation/injection/exemptions.py",
    "src/bastion/validation/injection/guard.py",
    "src/bastion/validation/injection/inspect.py",
    "src/bastion/validation/bodies.py",
    "src/bastion/validation/errors.py",
    "src/bastion/validation/guard.py",
    "src/bastion/validation/operation.py",
    "src/bastion/validation/params.py",
    "src/bastion/validation/router.py",
]


def _warn(message: str) -> None:
    if os.environ.get("BASTION_REQUIRE_COMPILED") == "1":
        # The test script sets this where a C compiler exists, so that a build that quietly
        # fell back to pure Python cannot pass for the compiled one.
        raise SystemExit(f"bastion build: {message} (BASTION_REQUIRE_COMPILED=1)")
    print(f"bastion build: {message}; installing the pure-Python engine", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """Build the compiled engine, or none of it: a half-built set of extension modules would
    fail at import, so any failure removes what was built and the pure-Python modules serve."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # a missing compiler surfaces as several error types
            _warn(f"compiling failed ({exc.__class__.__name__}: {exc})")
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            self.extensions = []


def _extensions() -> list[Any]:
    if os.environ.get("BASTION_PURE_PYTHON") == "1":
        return []
    if any(arg.startswith("editable") or arg == "develop" for arg in sys.argv[1:]):
        return []
    if "bdist_wheel" not in sys.argv and "build_ext" not in sys.argv:
        return []  # metadata and sdist steps need no compiler
    try:
        from mypyc.build import mypycify

        return list(mypycify(COMPILED, opt_level="3", group_name="bastion"))
    except BaseException as exc:  # mypyc reports type errors by exiting
        _warn(f"mypyc is unavailable or refused the sources ({exc.__class__.__name__})")
        return []


LIBINJECTION_DIR = "src/bastion/validation/injection/native"


def _native_extensions() -> list[Any]:
    """libinjection (BSD C sources, vendored) behind a small binding, for the injection guard.

    Unlike the mypyc modules it has no pure-Python twin, so it is built for editable installs
    and with ``BASTION_PURE_PYTHON=1`` too; it is a top-level module (``_bastion_libinjection``)
    so that running the source tree (``PYTHONPATH=src``) still finds the installed build. Without
    a C compiler the injection guard refuses to start (it never passes traffic unchecked).
    """
    building = any(
        arg in ("bdist_wheel", "build_ext", "develop") or arg.startswith("editable")
        for arg in sys.argv[1:]
    )
    if not building:
        return []
    sources = ["bastion_libinjection.c"] + [
        f"libinjection/libinjection_{name}.c" for name in ("sqli", "xss", "html5")
    ]
    return [
        Extension(
            "_bastion_libinjection",
            sources=[f"{LIBINJECTION_DIR}/{source}" for source in sources],
            include_dirs=[f"{LIBINJECTION_DIR}/libinjection"],
            depends=[str(path) for path in Path(LIBINJECTION_DIR).glob("libinjection/*.h")],
        )
    ]


ECS_DIR = "src/bastion/observability/native"


def _ecs_extension() -> list[Any]:
    """The event writer's line formatting in C (``_bastion_ecs``). Optional: without it (no C
    compiler, or ``BASTION_PURE_PYTHON=1``) the writer formats with the Python functions of
    ``bastion.observability.ecs``, which produce the same bytes, slower. Top-level like
    ``_bastion_libinjection``, and built for editable installs too, so that the source tree
    (``PYTHONPATH=src``) is measured with it."""
    if os.environ.get("BASTION_PURE_PYTHON") == "1":
        return []
    building = any(
        arg in ("bdist_wheel", "build_ext", "develop") or arg.startswith("editable")
        for arg in sys.argv[1:]
    )
    if not building:
        return []
    return [Extension("_bastion_ecs", sources=[f"{ECS_DIR}/bastion_ecs.c"])]


setup(
    ext_modules=[*_extensions(), *_native_extensions(), *_ecs_extension()],
    cmdclass={"build_ext": OptionalBuildExt},
)
