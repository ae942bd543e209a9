"""What clients are told about limits: the IETF ``RateLimit-Policy`` and ``RateLimit`` fields
(draft-ietf-httpapi-ratelimit-headers-10, Structured Field lists), the legacy ``X-RateLimit-*``
trio, ``Retry-After``, and the 429 problem.

Values are whole seconds rounded up, so that a client that waits what it is told is never early:
``Retry-After`` and ``t`` on a 429 name the same instant, the earliest at which the same request
would be admitted.
"""

from __future__ import annotations

import math

from bastion.pipeline.decisions import Deny
from bastion.ratelimit.core import Rate, Verdict

HeaderPairs = tuple[tuple[str, str], ...]


def policy_item(name: str, rate: Rate) -> str:
    """One ``RateLimit-Policy`` list member: ``"per-ip";q=100;w=60``."""
    return f'"{name}";q={rate.limit};w={max(1, math.ceil(rate.period))}'


def seconds(value: float) -> int:
    """Whole seconds, never early: 0.2 s is 1, 0 is 0."""
    if value <= 0:
        return 0
    return math.ceil(value - 1e-9)


def limit_item(name: str, verdict: Verdict) -> str:
    """One ``RateLimit`` member: ``"per-ip";r=42;t=30``."""
    reset = verdict.retry_after if not verdict.allowed else verdict.reset_after
    return f'"{name}";r={max(0, verdict.remaining)};t={seconds(reset)}'


def allowed_headers(
    policies: str, name: str, verdict: Verdict, *, ietf: bool, legacy: bool
) -> HeaderPairs:
    """Headers on an admitted response: every policy that applied, and the state of the one with
    the least quota left (the draft asks for the lower ``remaining``)."""
    pairs: list[tuple[str, str]] = []
    if ietf:
        pairs.append(("ratelimit-policy", policies))
        pairs.append(("ratelimit", limit_item(name, verdict)))
    if legacy:
        pairs.extend(legacy_headers(verdict))
    return tuple(pairs)


def legacy_headers(verdict: Verdict) -> HeaderPairs:
    reset = verdict.retry_after if not verdict.allowed else verdict.reset_after
    return (
        ("x-ratelimit-limit", str(verdict.limit)),
        ("x-ratelimit-remaining", str(max(0, verdict.remaining))),
        ("x-ratelimit-reset", str(seconds(reset))),
    )


def exceeded(
    policies: str,
    name: str,
    verdict: Verdict,
    *,
    ietf: bool,
    legacy: bool,
    fields: dict[str, object],
) -> Deny:
    """The 429 for a refused hit: ``Retry-After`` never earlier than the reset, the IETF fields,
    and a problem naming the violated policy (never the client's key)."""
    retry = max(1, seconds(verdict.retry_after))
    headers: list[tuple[str, str]] = [("retry-after", str(retry))]
    if ietf:
        headers.append(("ratelimit-policy", policies))
        headers.append(("ratelimit", f'"{name}";r=0;t={retry}'))
    if legacy:
        headers.extend(
            (
                ("x-ratelimit-limit", str(verdict.limit)),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", str(retry)),
            )
        )
    return Deny(
        429,
        "ratelimit.exceeded",
        "Too Many Requests",
        f"The rate limit '{name}' was exceeded; retry after {retry} seconds.",
        headers=tuple(headers),
        fields=fields,
        extensions={"violated-policies": [name]},
    )
