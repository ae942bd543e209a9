"""Mozilla Server Side TLS profiles as :class:`ssl.SSLContext` settings.

``intermediate`` (the default): TLS 1.2 and 1.3; TLS 1.2 suites ECDHE with AEAD only (AES-GCM,
ChaCha20-Poly1305); no DHE (finite-field Diffie-Hellman needs parameters of its own and buys
no client that matters today). ``modern``: TLS 1.3 only. Both: key exchange groups X25519,
P-256 and P-384 only, no compression, no renegotiation, client's cipher preference (every
offered suite is strong), ALPN ``http/1.1``.

The standard library cannot set several key exchange groups (``set_ecdh_curve`` sets one), so
:func:`set_groups` calls OpenSSL's ``SSL_CTX_set1_groups_list`` on the context through ctypes,
on the very libssl the ``ssl`` module is linked with (checked by version). Where that is not
possible, P-256 alone is set: compliant, and supported by every TLS client.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
from functools import cache
from typing import Literal

logger = logging.getLogger("bastion.tls")

Profile = Literal["intermediate", "modern"]

INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)
GROUPS = "X25519:P-256:P-384"
ALPN = ["http/1.1"]
_SSL_CTRL_SET_GROUPS_LIST = 92


@cache
def _libssl() -> ctypes.CDLL | None:
    """The libssl the ``ssl`` module uses, found among the libraries mapped in this process."""
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if "libssl" in line and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
            lib.OpenSSL_version.restype = ctypes.c_char_p
            lib.OpenSSL_version.argtypes = [ctypes.c_int]
            version = lib.OpenSSL_version(0)
        except (OSError, AttributeError):
            continue
        if isinstance(version, bytes) and version.decode("ascii", "replace").startswith(
            ssl.OPENSSL_VERSION
        ):
            lib.SSL_CTX_ctrl.restype = ctypes.c_long
            lib.SSL_CTX_ctrl.argtypes = [
                ctypes.c_void_p,
                ctypes.c_int,
                ctypes.c_long,
                ctypes.c_void_p,
            ]
            return lib
    return None


def set_groups(context: ssl.SSLContext, groups: str = GROUPS) -> bool:
    """Limit key exchange to ``groups`` (an OpenSSL list); whether the full list could be set.

    The ``SSL_CTX`` pointer is the first field after the object header of CPython's
    ``PySSLContext``, a layout unchanged since Python 3.7.
    """
    lib = _libssl()
    if lib is not None:
        pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
        if (
            pointer
            and lib.SSL_CTX_ctrl(pointer, _SSL_CTRL_SET_GROUPS_LIST, 0, groups.encode()) == 1
        ):
            return True
    context.set_ecdh_curve("prime256v1")
    return False


def server_context(profile: Profile = "intermediate") -> ssl.SSLContext:
    """A server context with the profile's versions, suites, groups and options (no certificate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if profile == "modern" else ssl.TLSVersion.TLSv1_2
    )
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    if profile == "intermediate":
        context.set_ciphers(INTERMEDIATE_CIPHERS)
    context.options |= (
        ssl.OP_NO_COMPRESSION
        | ssl.OP_NO_RENEGOTIATION
        | ssl.OP_SINGLE_ECDH_USE
        | ssl.OP_NO_TICKET  # stateful resumption only: ticket keys would never rotate
    )
    context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if not set_groups(context):
        logger.warning("tls: key exchange limited to P-256 (OpenSSL groups could not be set)")
    context.set_alpn_protocols(ALPN)
    return context


def client_context(*, verify: bool = True, cafile: str | None = None) -> ssl.SSLContext:
    """A client context for upstreams: TLS 1.2+, certificate and host name verified unless
    ``verify`` is false (a spelled-out choice), the system trust store or ``cafile``."""
    if cafile is not None:
        context = ssl.create_default_context(cafile=cafile)
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(ALPN)
    return context
