"""Why a token was refused: a value with a stable code, and the exception that carries it inside.

Verification answers :class:`TokenError` values (denial is a value). ``code`` is what a client
and an operator match on; ``reason`` says which check failed, in words bastion wrote, so it is
safe to log: it never quotes the token, a claim value or a header value the client sent.

==============================  ======  ==========================================================
code                            status  meaning
==============================  ======  ==========================================================
``auth.invalid_token``          401     malformed, bad signature, wrong issuer/audience/type, ...
``auth.expired_token``          401     ``exp`` has passed (beyond the leeway)
``auth.token_not_yet_valid``    401     ``nbf`` is in the future (beyond the leeway)
``auth.revoked_token``          401     the token's ``jti`` or subject was revoked
``auth.keys_unavailable``       503     the issuer's keys cannot be had (provider down too long)
==============================  ======  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bastion.pipeline.decisions import Deny

INVALID_TOKEN = "auth.invalid_token"  # noqa: S105 (a problem code, not a secret)
EXPIRED_TOKEN = "auth.expired_token"  # noqa: S105 (a problem code, not a secret)
NOT_YET_VALID = "auth.token_not_yet_valid"
REVOKED_TOKEN = "auth.revoked_token"  # noqa: S105 (a problem code, not a secret)
KEYS_UNAVAILABLE = "auth.keys_unavailable"

_TITLES = {
    INVALID_TOKEN: "Invalid token",
    EXPIRED_TOKEN: "Expired token",
    NOT_YET_VALID: "Token not yet valid",
    REVOKED_TOKEN: "Revoked token",
    KEYS_UNAVAILABLE: "Token keys unavailable",
}
_DETAILS = {
    INVALID_TOKEN: "The bearer token is not valid.",
    EXPIRED_TOKEN: "The bearer token has expired.",
    NOT_YET_VALID: "The bearer token is not valid yet.",
    REVOKED_TOKEN: "The bearer token has been revoked.",
    KEYS_UNAVAILABLE: "The token issuer's keys are unavailable; try again later.",
}


@dataclass(frozen=True, slots=True)
class TokenError:
    """A refused token: ``code`` (stable), ``reason`` (which check, safe to log), ``status``."""

    code: str
    reason: str

    @property
    def status(self) -> int:
        return 503 if self.code == KEYS_UNAVAILABLE else 401

    def deny(self, realm: str | None = None) -> Deny:
        """The RFC 9457 denial for this error, with RFC 6750's ``WWW-Authenticate: Bearer``.

        The client sees a fixed title and detail per code; ``reason`` goes only to the event.
        """
        params = [f'realm="{realm}"'] if realm else []
        if self.status == 401:
            params.append('error="invalid_token"')
        challenge = "Bearer " + ", ".join(params) if params else "Bearer"
        headers = (("WWW-Authenticate", challenge),) if self.status == 401 else ()
        return Deny(
            self.status,
            self.code,
            _TITLES.get(self.code, "Invalid token"),
            _DETAILS.get(self.code, _DETAILS[INVALID_TOKEN]),
            headers=headers,
            fields={"reason": self.reason},
        )


class TokenRejected(Exception):
    """Raised inside parsing and checking; the verifier turns it into its :class:`TokenError`."""

    codes: ClassVar[frozenset[str]] = frozenset(_TITLES)

    def __init__(self, reason: str, code: str = INVALID_TOKEN) -> None:
        super().__init__(reason)
        self.error = TokenError(code, reason)


def reject(reason: str, code: str = INVALID_TOKEN) -> TokenRejected:
    """``raise reject("signature does not verify")``: the reason must be bastion's own words."""
    return TokenRejected(reason, code)
