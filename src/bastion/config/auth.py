"""Configuration of practice 1, authentication (API keys, tokens, identity providers)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteAuthConfig(_Model):
    """Per-route authentication requirements."""


class AuthConfig(_Model):
    """Authentication for every route (per-route settings live on the route)."""
