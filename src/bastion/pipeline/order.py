"""THE order of guards. Read this one table to know what runs before what.

Each built-in guard has one row: its phase and its rank inside the phase. A guard that is not in
the table (a user's own) runs after the built-ins of its phase, in the order it was configured.
Practices add their rows here as they add guards; nothing else decides order.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.pipeline.guard import Guard, Phase

GUARD_ORDER: dict[str, tuple[Phase, int]] = {
    # connection: the plain-HTTP listener's policy (its chain has nothing else)
    "plain_http": (Phase.CONNECTION, 10),
    # route: which route (upstream or local endpoint) the request is for
    "router": (Phase.ROUTE, 10),
    # login lockout: refuse a locked-out client before any credential is checked
    "login_limit": (Phase.ROUTE, 20),
    # authenticate: credentials only in headers and only one, then each kind of credential
    "credential_placement": (Phase.AUTHENTICATE, 10),
    # a client certificate first, so that a header credential (more precise) replaces it
    "client_certificate": (Phase.AUTHENTICATE, 15),
    "api_key": (Phase.AUTHENTICATE, 20),
    "bearer_token": (Phase.AUTHENTICATE, 30),
    # authorize: the route's requirement and scopes; identity headers for the upstream
    "auth_requirements": (Phase.AUTHORIZE, 10),
    # object-level rules (a path, query or body value equals a claim of the caller)
    "object_authorization": (Phase.AUTHORIZE, 20),
    # rate limiting: request rate per policy, then in-flight requests per consumer
    "rate_limit": (Phase.RATE_LIMIT, 10),
    "concurrency": (Phase.RATE_LIMIT, 20),
    # validate: the OpenAPI document as an allowlist (paths, methods, parameters, bodies)
    "validation": (Phase.VALIDATE, 10),
    # validate: injection detection (SQL, XSS, command) after the OpenAPI validator
    "injection": (Phase.VALIDATE, 20),
    # forward: what the upstream receives (after validation saw the values in clear)
    "field_encryption": (Phase.FORWARD, 10),
    # log: the detectors' completion hook (its check allows at once)
    "monitor": (Phase.LOG, 10),
}

_UNRANKED = 1_000


def sort_key(guard: Guard) -> tuple[int, int]:
    phase, rank = GUARD_ORDER.get(guard.name, (guard.phase, _UNRANKED))
    return int(phase), rank


def ordered(guards: Sequence[Guard]) -> list[Guard]:
    """``guards`` in chain order (stable for guards of equal place)."""
    return sorted(guards, key=sort_key)
