"""The plain-HTTP listener's policy (``tls.plain_http``): nothing is ever forwarded in clear.

A request that carries a credential (``Authorization``, ``Proxy-Authorization``, the API key
header, ``Cookie``, or a credential-named query parameter or credential-shaped value) is refused
with 403 ``tls.credentials_over_http`` under either policy, and the refusal is a security event
(the chain records it): the credential has already crossed the network in clear, so redirecting
would only help it be sent twice; it must be rotated. Which credential is named in the event,
never its value. Other requests are refused with 403 ``tls.https_required`` (``refuse``) or sent
to the same host and target over HTTPS with 308 (``redirect``, which keeps the method and body).
"""

from __future__ import annotations

from typing import ClassVar

from bastion.auth.placement import name_pattern, normalise, query_credential
from bastion.config.models import BastionConfig
from bastion.observability.events import EventSink
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.decisions import ALLOW, Decision, Deny
from bastion.pipeline.guard import Phase
from bastion.pipeline.problem import problem_response
from bastion.pipeline.request import Request
from bastion.pipeline.response import FunctionEndpoint, Response
from bastion.pipeline.routing import Route, Router

HTTPS_REQUIRED_DETAIL = "This API is served over HTTPS only; send the request to its https:// URL."
CREDENTIALS_DETAIL = (
    "The request carried credentials over plain HTTP; they must be considered exposed."
    " Send requests over HTTPS and replace the credential."
)
_CREDENTIAL_FIELDS = (b"authorization", b"proxy-authorization", b"cookie")


class PlainHTTPPolicy:
    """The ``plain_http`` guard: the only guard of the plain-HTTP listener's chain."""

    name: ClassVar[str] = "plain_http"
    phase: ClassVar[Phase] = Phase.CONNECTION
    requires_body: ClassVar[bool] = False

    def __init__(self, config: BastionConfig) -> None:
        self.fail_open = False
        auth = config.auth
        self.redirect = config.tls.plain_http.policy == "redirect"
        fields = set(_CREDENTIAL_FIELDS)
        fields.add(auth.api_keys.header.lower().encode("ascii"))
        self.fields = frozenset(fields)
        names = {normalise(n) for n in auth.query_credential_names}
        names.add(normalise(auth.api_keys.header))
        self.names = frozenset(names)
        self.pattern = name_pattern(self.names)
        self.refusal = Deny(403, "tls.https_required", "Forbidden", HTTPS_REQUIRED_DETAIL)

    def credential(self, request: Request) -> str | None:
        """Where the request carries a credential (a field name or ``query:NAME``), or None."""
        fields = self.fields
        for name, _ in request.headers.raw:
            if name in fields:
                return name.decode("latin-1")
        if request.query:
            found = query_credential(request.query, self.names, self.pattern)
            if found is not None:
                return f"query:{found}"
        return None

    def check(self, request: Request) -> Decision:
        where = self.credential(request)
        if where is not None:
            return Deny(
                403,
                "tls.credentials_over_http",
                "Forbidden",
                CREDENTIALS_DETAIL,
                fields={"credential": where, "listener": "plain_http"},
            )
        return ALLOW if self.redirect else self.refusal


def redirect_endpoint(https_port: int, refusal: Deny) -> FunctionEndpoint:
    """308 to ``https://HOST[:PORT]/same/target``: the host as the engine validated it (a name
    or a bracketed IPv6 address, no port). Without a Host (HTTP/1.0), the refusal instead."""
    suffix = "" if https_port == 443 else f":{https_port}"

    async def redirect(request: Request) -> Response:
        if not request.host:
            return problem_response(refusal, request.request_id)
        target = request.path + (f"?{request.query}" if request.query else "")
        return Response(308, (("location", f"https://{request.host}{suffix}{target}"),), b"")

    return FunctionEndpoint(redirect)


def plain_http_chain(config: BastionConfig, events: EventSink, https_port: int) -> GuardChain:
    """The plain listener's chain: the policy guard, and for ``redirect`` the one route."""
    plain = config.tls.plain_http
    port = plain.https_port or https_port
    policy = PlainHTTPPolicy(config)
    route = Route(name="https_redirect", endpoint=redirect_endpoint(port, policy.refusal))
    return GuardChain([Router([route]), policy], events)
