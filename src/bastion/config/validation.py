"""Configuration of practice 3, input validation: the OpenAPI document (top-level ``openapi``)
becomes an allowlist enforced on every request.

Validation is off until ``validation.enabled`` is true, because turning it on refuses everything
the document does not describe: an operator should say so. Every weaker choice (monitor mode,
pass-through routes) must be spelled out here and is logged at start.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.config.types import ByteSize


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValidationLimits(_Model):
    """Bounds on request bodies, checked before (or while) the body is parsed."""

    max_body_bytes: ByteSize | None = Field(
        None, ge=0, description="a body past it: 413; none means limits.max_body_bytes"
    )
    json_max_depth: int = Field(32, ge=1, le=1000, description="nesting of arrays and objects")
    json_max_members: int = Field(
        10_000, ge=1, description="object members plus array items in one JSON body"
    )
    multipart_max_parts: int = Field(100, ge=1, description="parts in one multipart body")


# What happens to upstream responses of documented operations: nothing (off), a security event
# per violation of the documented schema (monitor), or undocumented properties removed (strip).
ResponseMode = Literal["off", "monitor", "strip"]


class ValidationConfig(_Model):
    """``validation:``: what the OpenAPI document enforces, and how refusals look."""

    enabled: bool = Field(False, description="validate requests against the openapi document")
    mode: Literal["block", "monitor"] = Field(
        "block", description="monitor: record violations as events, let requests through"
    )
    strict: bool = Field(
        False,
        description="undocumented query parameters and body properties are refused everywhere",
    )
    status: Literal[400, 422] = Field(400, description="status of a request that violates")
    pass_through: tuple[str, ...] = Field(
        (), description="route names forwarded without validation (logged at start)"
    )
    routes: tuple[str, ...] = Field(
        (), description="route names the document describes; empty means every route"
    )
    limits: ValidationLimits = ValidationLimits()
    responses: ResponseMode = Field(
        "off",
        description="upstream JSON responses: off, monitor (events) or strip (undocumented out)",
    )
    responses_by_route: dict[str, ResponseMode] = Field(
        {}, description="route name -> off, monitor or strip, overriding responses for it"
    )


def check_validation_references(
    validation: ValidationConfig, routes: set[str], has_document: bool
) -> None:
    """Cross-field rules: validation needs the document, and route names must exist."""
    if validation.enabled and not has_document:
        raise ValueError("validation.enabled is true but openapi is not set; expected a document")
    for field in ("pass_through", "routes", "responses_by_route"):
        unknown = sorted(set(getattr(validation, field)) - routes)
        if unknown and routes:
            raise ValueError(
                f"validation.{field} names unknown routes {', '.join(unknown)};"
                f" expected one of: {', '.join(sorted(routes))}"
            )
