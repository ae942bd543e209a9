"""The ``object_authorization`` guard: object-level rules (OWASP API1, broken object-level
authorization), so that a caller cannot reach another caller's objects by changing an id.

A route's ``auth.objects`` lists rules; each names a value of the request (a path parameter of a
template such as ``/users/{user_id}``, every value of a query parameter, or a member of the JSON
body by JSON pointer) that must equal a claim of the caller (``sub`` by default; for an API key,
``sub`` and ``consumer`` are its consumer, ``client_id`` its key id, ``tier`` its tier). A claim
that is a list (``tenants: [a, b]``) is met by any of its members. Every rule must hold; a
caller holding one of ``bypass_scopes`` (an admin) skips them. Refusals are 403
``auth.forbidden_object``; the event names the rule and the claim, never the values.

Defences against the usual ways around such a check: every occurrence of a query parameter
must match (``?account=mine&account=theirs`` is refused: frameworks disagree on which wins), a
JSON body with duplicate member names is refused for the same reason, a body that is not JSON
cannot be checked and is refused, and path values are compared percent-decoded (as the upstream
reads them). A request without the value is refused unless the rule says ``when_missing: allow``.

Rules with ``in: body`` make the chain buffer request bodies (up to ``limits.max_body_bytes``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import unquote, unquote_plus

from bastion.config.auth import ObjectRuleConfig
from bastion.config.models import BastionConfig
from bastion.pipeline.decisions import ALLOW, Decision, Deny
from bastion.pipeline.guard import Phase
from bastion.pipeline.identity import IDENTITY, Identity
from bastion.pipeline.request import Request
from bastion.pipeline.routing import ROUTE

FORBIDDEN_DETAIL = "The credential does not grant access to this object."
_SEPARATORS = re.compile(r"[&;]")
_MISSING = object()
_UNREADABLE = object()


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _Duplicate
        result[name] = value
    return result


def _text(value: object) -> str | None:
    """A claim or request value as compared: strings as they are, integers in decimal."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def claim_values(identity: Identity, claim: str) -> frozenset[str]:
    """The values ``identity`` holds for ``claim`` (several when the claim is a list)."""
    value: object = identity.claims.get(claim, _MISSING)
    if value is _MISSING:
        if claim in ("sub", "consumer"):
            value = identity.consumer
        elif claim == "client_id" and identity.method == "api_key":
            value = identity.key_id
        elif claim == "tier":
            value = identity.tier
    items: Iterable[object] = value if isinstance(value, list) else (value,)
    return frozenset(text for item in items if (text := _text(item)) is not None)


def _template_pattern(template: str, name: str) -> re.Pattern[str]:
    """``/users/{user_id}`` as a pattern matching whole leading segments, capturing ``name``."""
    parts = re.split(r"(\{[^{}/]+\})", template.rstrip("/"))
    regex = "".join(
        ("(?P<value>[^/]+)" if p[1:-1] == name else "[^/]+") if p.startswith("{") else re.escape(p)
        for p in parts
    )
    return re.compile(f"^{regex}(?:/|$)")


def _pointer(document: object, pointer: str) -> object:
    """The member at JSON pointer ``pointer`` (RFC 6901), or ``_MISSING``."""
    current = document
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict):
            current = current.get(token, _MISSING)
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            return _MISSING
        if current is _MISSING:
            return _MISSING
    return current


@dataclass(frozen=True, slots=True)
class ObjectRule:
    """One compiled rule."""

    source: str
    name: str
    claim: str
    allow_missing: bool
    pattern: re.Pattern[str] | None = None

    @classmethod
    def of(cls, config: ObjectRuleConfig) -> ObjectRule:
        pattern = None
        if config.source == "path":
            assert config.template is not None  # checked by ObjectRuleConfig
            pattern = _template_pattern(config.template, config.name)
        return cls(
            config.source, config.name, config.claim, config.when_missing == "allow", pattern
        )

    @property
    def label(self) -> str:
        return f"{self.source}:{self.name}"

    def values(self, request: Request, body: object) -> list[str] | None:
        """The request's values for this rule (``None``: not present, or unreadable)."""
        if self.source == "path":
            assert self.pattern is not None
            found = self.pattern.match(request.path)
            return [unquote(found.group("value"), errors="strict")] if found else None
        if self.source == "query":
            names = (self.name, self.name + "[]")
            values = []
            for part in _SEPARATORS.split(request.query) if request.query else ():
                name, _, value = part.partition("=")
                if unquote_plus(name) in names:
                    values.append(unquote_plus(value))
            return values or None
        value = _pointer(body, self.name)
        text = _text(value) if value is not _MISSING else None
        return None if text is None else [text]


@dataclass(frozen=True, slots=True)
class RouteRules:
    rules: tuple[ObjectRule, ...]
    bypass: frozenset[str]
    reads_body: bool


class ObjectAuthorization:
    """The ``object_authorization`` guard (see the module docstring)."""

    name: ClassVar[str] = "object_authorization"
    phase: ClassVar[Phase] = Phase.AUTHORIZE
    requires_body: ClassVar[bool] = False

    def __init__(self, rules: dict[str, RouteRules]) -> None:
        self.fail_open = False
        self.rules = rules

    @classmethod
    def from_config(cls, config: BastionConfig) -> ObjectAuthorization:
        """The guard for every route with ``auth.objects``; the body-reading kind when some
        rule reads the body."""
        rules = {
            route.name: RouteRules(
                tuple(ObjectRule.of(rule) for rule in route.auth.objects),
                frozenset(route.auth.bypass_scopes),
                any(rule.source == "body" for rule in route.auth.objects),
            )
            for route in config.routes
            if route.auth.objects
        }
        reads_body = any(r.reads_body for r in rules.values())
        return (BodyObjectAuthorization if reads_body else cls)(rules)

    def check(self, request: Request) -> Decision:
        state = request.state
        route = state.get(ROUTE)
        if route is None:
            return ALLOW
        rules = self.rules.get(route.name)
        if rules is None:
            return ALLOW
        identity = state.get(IDENTITY)
        if identity is None:
            return self._deny(route.name, None, None, "anonymous")
        if rules.bypass & identity.scopes:
            return ALLOW
        body: object = _MISSING
        if rules.reads_body:
            body = self._body(request)
            if body is _UNREADABLE:
                return self._deny(route.name, identity, None, "unreadable_body")
        for rule in rules.rules:
            try:
                values = rule.values(request, body)
            except UnicodeDecodeError:
                return self._deny(route.name, identity, rule, "malformed_value")
            if values is None:
                if rule.allow_missing:
                    continue
                return self._deny(route.name, identity, rule, "missing")
            allowed = claim_values(identity, rule.claim)
            if not allowed or any(value not in allowed for value in values):
                return self._deny(route.name, identity, rule, "mismatch")
        return ALLOW

    @staticmethod
    def _body(request: Request) -> object:
        body = request.body
        if not body:
            return _MISSING
        media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            return _UNREADABLE
        try:
            return json.loads(body, object_pairs_hook=_no_duplicates)
        except (ValueError, RecursionError):
            return _UNREADABLE

    @staticmethod
    def _deny(route: str, identity: Identity | None, rule: ObjectRule | None, reason: str) -> Deny:
        fields: dict[str, object] = {"route": route, "reason": reason}
        if rule is not None:
            fields["rule"] = rule.label
            fields["claim"] = rule.claim
        if identity is not None:
            fields["consumer"] = identity.consumer
            fields["auth_method"] = identity.method
            if identity.key_id is not None:
                fields["key_id"] = identity.key_id
        return Deny(403, "auth.forbidden_object", "Forbidden", FORBIDDEN_DETAIL, fields=fields)


class BodyObjectAuthorization(ObjectAuthorization):
    """The same guard when some rule reads the JSON body: the chain buffers bodies for it."""

    requires_body: ClassVar[bool] = True
