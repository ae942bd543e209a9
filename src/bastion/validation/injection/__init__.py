"""Injection defence: SQL injection and XSS (libinjection) and shell command injection, in the
path, the query, named headers and every string of a body, blocked or monitored per route."""

from __future__ import annotations

from bastion.config.models import BastionConfig
from bastion.observability.events import EventSink
from bastion.pipeline.guard import Guard
from bastion.validation.injection.guard import InjectionGuard


def injection_guards(config: BastionConfig, events: EventSink) -> list[Guard]:
    """``injection`` when ``injection.mode`` (or some rule's mode) is not ``off``."""
    if not config.injection.active:
        return []
    routes = {route.name for route in config.routes}
    return [InjectionGuard(config.injection, routes, max_body_bytes=config.limits.max_body_bytes)]


__all__ = ["InjectionGuard", "injection_guards"]
