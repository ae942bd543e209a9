"""What a guard changes in the response body the client receives (decryption, filtering).

A guard that must see and rewrite a response body puts a :class:`BodyRewrite` in
``request.state[RESPONSE_BODY]`` while it checks the request. The engine (and the ASGI
middleware) then holds that one response, up to ``limits.max_body_bytes``, calls the rewrite once
with the whole body, and sends the result with a recomputed ``Content-Length``. Every other
response streams through untouched, so the cost is paid only where a rule asks for it.

A response with a ``Content-Encoding`` (gzip, br, ...) is passed through as it is: the rewrite
sees only bodies it can read. A body larger than the limit, or a rewrite that raises, ends in a
``502 upstream.response_unprocessable`` problem: the client never receives a body the rule was
meant to transform but could not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Protocol

from bastion.pipeline.decisions import Deny
from bastion.pipeline.request import StateKey


class BodyRewrite(Protocol):
    """Returns the new body, or ``None`` to send the body unchanged. ``content_type`` is the
    response's media type header as sent (``None`` when absent)."""

    def __call__(self, status: int, content_type: str | None, body: bytes) -> bytes | None: ...


RESPONSE_BODY: Final = StateKey[BodyRewrite]("response_body")

UNPROCESSABLE: Final = Deny(
    502,
    "upstream.response_unprocessable",
    "Bad Gateway",
    "The upstream response could not be processed.",
)


def provides_rewrites(guards: Iterable[object]) -> bool:
    """Whether any guard of a chain may ask for a response rewrite (its ``rewrites_responses``
    attribute is true): the engine checks request state only then."""
    return any(getattr(g, "rewrites_responses", False) for g in guards)
