"""Who the caller is, as the authentication guards found it; later guards read it from state.

Authentication guards (API keys, tokens, client certificates) set ``request.state[IDENTITY]``;
authorization, rate limiting (tiers, per-consumer limits) and forwarding read it. A request
without an identity is anonymous.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bastion.pipeline.request import StateKey


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller.

    ``consumer`` is the stable consumer id. ``method`` says how it was proven (``api_key``,
    ``jwt``, ``oidc``, ``mtls``). ``key_id`` is the public id of the credential (an API key's id,
    a token's ``jti``), never the secret. ``tier`` is the consumer's plan, used by rate limiting.
    ``claims`` holds verified token claims, for object-level rules.
    """

    consumer: str
    method: str
    key_id: str | None = None
    scopes: frozenset[str] = frozenset()
    tier: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


IDENTITY: Final[StateKey[Identity]] = StateKey("identity")
