"""The ``injection`` guard: SQL injection, XSS and shell command injection, blocked or monitored.

It runs in the validate phase, after authentication and rate limiting (an anonymous flood is
refused before it costs a body scan) and after the OpenAPI validator. Per request it finds the
first rule that applies (by route name or path prefix, and method), then inspects the path, the
query, the configured headers and the body (see :mod:`.inspect`).

In ``block`` mode a finding is a 400 ``injection.detected`` problem naming the kind and the place,
never the value. In ``monitor`` mode the request goes on and the chain records the same security
event (action ``injection.detected``, ``mode: monitor``), which is how a new deployment learns
its false positives before it blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bastion.config.injection import InjectionConfig, InjectionRuleConfig, Mode
from bastion.errors import ConfigError
from bastion.pipeline.decisions import ALLOW, Allow, Decision, Deny, ProblemField
from bastion.pipeline.guard import Phase
from bastion.pipeline.request import Request
from bastion.pipeline.routing import ROUTE
from bastion.validation.injection.encoding import Uninspectable, decoded
from bastion.validation.injection.engine import Detector
from bastion.validation.injection.exemptions import Exemptions
from bastion.validation.injection.inspect import Finding, Inspector, TooManyValues

CODE = "injection.detected"
TOO_MANY = Deny(
    400,
    "injection.too_many_values",
    "Bad Request",
    "The request holds more values than the injection check inspects; it was refused.",
)
UNSUPPORTED_ENCODING = Deny(
    415,
    "injection.unsupported_encoding",
    "Unsupported Media Type",
    "The request body's Content-Encoding cannot be inspected; send it as gzip, deflate or"
    " identity.",
)
TOO_LARGE = Deny(
    413,
    "injection.too_large",
    "Content Too Large",
    "The request body is too large once decompressed to be inspected.",
)
_KIND_NAMES = {
    "sql": "SQL injection",
    "xss": "cross-site scripting",
    "command": "command injection",
}


@dataclass(frozen=True, slots=True)
class _Rule:
    route: str | None
    path_prefix: str | None
    methods: frozenset[str]
    mode: Mode
    exempt: Exemptions

    def applies(self, request: Request, route_name: str | None) -> bool:
        if self.methods and request.method not in self.methods:
            return False
        if self.route is not None:
            return route_name == self.route
        prefix = self.path_prefix or "/"
        path = request.path
        if prefix.endswith("/") or path == prefix:
            return path.startswith(prefix)
        return path.startswith(prefix) and path[len(prefix)] == "/"


def denial(finding: Finding) -> Deny:
    """The 400 a client sees: kind and place as problem members, no submitted value."""
    what = _KIND_NAMES[finding.kind]
    place = "a name in " + finding.where if finding.in_name else finding.where
    message = f"{what} detected in {place}"
    return Deny(
        400,
        CODE,
        "Bad Request",
        f"A value in the request looks like {what}; the request was refused.",
        errors=(ProblemField(finding.pointer, message),),
        fields=_fields(finding, "block"),
        extensions={"kind": finding.kind, "in": finding.where, "location": finding.location},
    )


def _fields(finding: Finding, mode: Mode) -> dict[str, object]:
    return {
        "injection.kind": finding.kind,
        "injection.in": finding.where,
        "injection.location": finding.location,
        "injection.in_name": finding.in_name,
        "injection.mode": mode,
    }


class InjectionGuard:
    """The ``injection`` guard (see the module docstring)."""

    name: ClassVar[str] = "injection"
    phase: ClassVar[Phase] = Phase.VALIDATE
    requires_body: ClassVar[bool] = True

    def __init__(
        self,
        config: InjectionConfig,
        routes: set[str] | None = None,
        *,
        max_body_bytes: int = 10 * 1024 * 1024,
    ) -> None:
        self.fail_open = False
        self.detector = Detector(config.detect)
        self.kinds = frozenset(config.detect)
        self.max_body_bytes = max_body_bytes
        self.inspect = frozenset(config.inspect)
        self.headers = config.headers if "header" in self.inspect else ()
        self.max_values = config.max_values
        self.mode: Mode = config.mode
        self.exempt = Exemptions.compile(config.exempt)
        self.rules = tuple(
            self._rule(index, rule, routes) for index, rule in enumerate(config.rules)
        )

    def _rule(self, index: int, rule: InjectionRuleConfig, routes: set[str] | None) -> _Rule:
        if rule.route is not None and routes and rule.route not in routes:
            raise ConfigError(
                f"injection.rules[{index}].route: {rule.route!r} is not a route; expected one"
                f" of: {', '.join(sorted(routes))}"
            )
        return _Rule(
            rule.route,
            rule.path_prefix,
            frozenset(rule.methods),
            rule.mode or self.mode,
            self.exempt.merged(Exemptions.compile(rule.exempt)),
        )

    def _settings(self, request: Request) -> tuple[Mode, Exemptions]:
        if self.rules:
            route = request.state.get(ROUTE)
            route_name = route.name if route is not None else None
            for rule in self.rules:
                if rule.applies(request, route_name):
                    return rule.mode, rule.exempt
        return self.mode, self.exempt

    def check(self, request: Request) -> Decision:
        mode, exempt = self._settings(request)
        if mode == "off":
            return ALLOW
        try:
            finding = self.first(request, exempt)
        except TooManyValues:
            return self._uninspectable(TOO_MANY, mode)
        except Uninspectable as exc:
            return self._uninspectable(
                TOO_LARGE if exc.reason == "size" else UNSUPPORTED_ENCODING, mode
            )
        if finding is None:
            return ALLOW
        if mode == "block":
            return denial(finding)
        return Allow(event=CODE, fields=_fields(finding, "monitor"))

    @staticmethod
    def _uninspectable(denial: Deny, mode: Mode) -> Decision:
        """Refused in block mode; let through with an event (named by the code) in monitor."""
        if mode == "block":
            return denial
        return Allow(event=denial.code, fields={"injection.mode": mode})

    def first(self, request: Request, exempt: Exemptions) -> Finding | None:
        """The first finding in ``request`` (path, query, headers, body), or ``None``."""
        inspector = Inspector(self.detector, exempt, self.max_values)
        inspect = self.inspect
        found: Finding | None = None
        if "path" in inspect:
            found = inspector.path(request.path)
        if found is None and request.query and "query" in inspect:
            found = inspector.pairs(request.query, "query")
        if found is None and self.headers:
            found = inspector.headers(request, self.headers)
        body = request.body
        if found is None and body and "body" in inspect and not self.kinds <= exempt.at("body"):
            encoding = request.headers.get("content-encoding")
            if encoding is not None:
                body = decoded(body, encoding, self.max_body_bytes)
            found = inspector.body(body, request.headers.get("content-type"))
        return found
