"""Building the validation guard on a test document, and requests for it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bastion.config.models import BastionConfig
from bastion.observability.events import MemorySink
from bastion.pipeline.decisions import Allow, Decision, Deny
from bastion.pipeline.problem import problem_body
from bastion.pipeline.request import ClientAddress, Headers, Request
from bastion.validation.assembly import validation_guards
from bastion.validation.guard import ValidationGuard

SPECS = Path(__file__).parent / "specs"
PETS_30 = SPECS / "petstore-3.0.yaml"
PETS_31 = SPECS / "petstore-3.1.yaml"


def config_for(spec: Path, **validation: Any) -> BastionConfig:
    return BastionConfig.model_validate(
        {
            "openapi": str(spec),
            "validation": {"enabled": True, **validation},
            "admin": {"enabled": False},
            "events": {"sink": "none"},
        }
    )


def guard_for(spec: Path, **validation: Any) -> ValidationGuard:
    guards = validation_guards(config_for(spec, **validation), MemorySink())
    assert len(guards) == 1
    guard = guards[0]
    assert isinstance(guard, ValidationGuard)
    return guard


def request(
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
) -> Request:
    path, _, query = target.partition("?")
    return Request(
        method=method,
        path=path,
        query=query,
        headers=Headers([(k.lower().encode(), v.encode()) for k, v in headers]),
        client=ClientAddress("127.0.0.1", 40000),
        body=body,
    )


def json_request(method: str, target: str, value: Any) -> Request:
    return request(method, target, [("content-type", "application/json")], orjson.dumps(value))


def refusal(decision: Decision) -> dict[str, Any]:
    """The problem document a denial answers with (fails if the request was allowed)."""
    assert isinstance(decision, Deny), f"expected a denial, got {decision!r}"
    doc: dict[str, Any] = orjson.loads(problem_body(decision, "test"))
    return doc


def pointers(decision: Decision) -> dict[str, str]:
    return {e["pointer"]: e["message"] for e in refusal(decision).get("errors", [])}


def allowed(decision: Decision) -> bool:
    return isinstance(decision, Allow)
