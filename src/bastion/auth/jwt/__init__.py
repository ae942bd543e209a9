"""JWTs: verification hardened per RFC 8725, identity providers' keys, bastion's own tokens.

The pieces, each usable alone:

- :mod:`.jose`: compact JWS parsing and signature verification (``cryptography``);
- :mod:`.claims`: the claims policy (iss, aud, exp, nbf, iat with leeway, typ);
- :mod:`.jwks`: an identity provider's keys via OIDC discovery, cached and refreshed;
- :mod:`.cache`: verified tokens, bounded and honouring ``exp`` and revocation;
- :mod:`.signing`: bastion's signing keys, rotation, JWKS publication, RFC 9068 tokens;
- :mod:`.keystore`: where the signing keys persist (memory, files; the store contract);
- :mod:`.verifier`: :class:`TokenVerifier`, the one call a guard makes;
- :mod:`.settings`: the configuration models.
"""

from bastion.auth.jwt.cache import (
    MemoryRevocations,
    Revocations,
    TokenCache,
    VerifiedToken,
)
from bastion.auth.jwt.claims import ClaimsPolicy
from bastion.auth.jwt.errors import (
    EXPIRED_TOKEN,
    INVALID_TOKEN,
    KEYS_UNAVAILABLE,
    NOT_YET_VALID,
    REVOKED_TOKEN,
    TokenError,
)
from bastion.auth.jwt.jose import Limits, VerificationKey
from bastion.auth.jwt.jwks import IssuerKeys, KeyFetchError
from bastion.auth.jwt.keyset import KeySet, KeySource, StaticKeys
from bastion.auth.jwt.keystore import (
    FileSigningKeyStore,
    MemorySigningKeyStore,
    SigningKeyStore,
    StoredSigningKey,
)
from bastion.auth.jwt.settings import (
    IssuerSettings,
    SigningSettings,
    TokenCacheSettings,
    TokenEndpointSettings,
    TokenLimitSettings,
    TokenSettings,
)
from bastion.auth.jwt.signing import IssuedToken, SigningKeys
from bastion.auth.jwt.verifier import (
    Issuer,
    TokenVerifier,
    build_issuer,
    build_verifier,
    own_issuer,
)

__all__ = [
    "EXPIRED_TOKEN",
    "INVALID_TOKEN",
    "KEYS_UNAVAILABLE",
    "NOT_YET_VALID",
    "REVOKED_TOKEN",
    "ClaimsPolicy",
    "FileSigningKeyStore",
    "IssuedToken",
    "Issuer",
    "IssuerKeys",
    "IssuerSettings",
    "KeyFetchError",
    "KeySet",
    "KeySource",
    "Limits",
    "MemoryRevocations",
    "MemorySigningKeyStore",
    "Revocations",
    "SigningKeyStore",
    "SigningKeys",
    "SigningSettings",
    "StaticKeys",
    "StoredSigningKey",
    "TokenCache",
    "TokenCacheSettings",
    "TokenEndpointSettings",
    "TokenError",
    "TokenLimitSettings",
    "TokenSettings",
    "TokenVerifier",
    "VerificationKey",
    "VerifiedToken",
    "build_issuer",
    "build_verifier",
    "own_issuer",
]
