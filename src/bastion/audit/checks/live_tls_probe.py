"""Raw TLS ClientHello probes: which protocol versions and TLS 1.2 cipher suites a server accepts.

Why not Python's ``ssl``: modern OpenSSL builds refuse to *offer* TLS 1.0/1.1 or legacy suites
at the default security level, and lowering it (``@SECLEVEL=0``) depends on how the local
OpenSSL was built, so an audit would report what the auditing machine can say rather than what
the server accepts. Why not sslyze: it is AGPL-licensed (bastion is Apache-2.0), pins
``cryptography<47`` and ships its own OpenSSL builds (nassl). A ClientHello is a few hundred
bytes of well-specified structure (RFC 5246 §7.4.1.2): we send one offering exactly the version
and suites in question and read the ServerHello or the alert. The server's choice is the
answer; no handshake is completed, no key exchange is computed, so any version or suite can be
asked about. ``testssl.sh`` works the same way.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from bastion.audit.model import Registry

SSL3, TLS1_0, TLS1_1, TLS1_2 = 0x0300, 0x0301, 0x0302, 0x0303
VERSION_NAMES = {SSL3: "SSL 3.0", TLS1_0: "TLS 1.0", TLS1_1: "TLS 1.1", TLS1_2: "TLS 1.2"}
# how to replay an offer with curl (built against an OpenSSL that still has the version)
CURL_FLAGS = {
    SSL3: ("--sslv3",),
    TLS1_0: ("--tlsv1.0", "--tls-max", "1.0"),
    TLS1_1: ("--tlsv1.1", "--tls-max", "1.1"),
    TLS1_2: ("--tlsv1.2", "--tls-max", "1.2"),
}
TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Suite:
    code: int
    iana: str
    openssl: str


def _suites(*rows: tuple[int, str, str]) -> tuple[Suite, ...]:
    return tuple(Suite(*row) for row in rows)


# Mozilla Server Side TLS 5.8, intermediate profile: TLS 1.2 with ECDHE key exchange and AEAD only.
INTERMEDIATE = _suites(
    (0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    (0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"),
    (0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    (0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
    (0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"),
    (0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"),
)

# Suites outside that profile a server may still accept: CBC, static RSA key exchange, finite
# field DHE, 3DES, RC4, CCM, Camellia, SEED, IDEA, NULL, anonymous and export suites.
OUTSIDE = _suites(
    (0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"),
    (0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"),
    (0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"),
    (0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"),
    (0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256"),
    (0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "ECDHE-ECDSA-AES256-SHA384"),
    (0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"),
    (0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "ECDHE-RSA-AES256-SHA384"),
    (0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"),
    (0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"),
    (0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"),
    (0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"),
    (0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256"),
    (0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", "AES256-SHA256"),
    (0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "DHE-RSA-AES128-GCM-SHA256"),
    (0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "DHE-RSA-AES256-GCM-SHA384"),
    (0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "DHE-RSA-CHACHA20-POLY1305"),
    (0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", "DHE-RSA-AES128-SHA"),
    (0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "DHE-RSA-AES256-SHA"),
    (0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", "DHE-RSA-AES128-SHA256"),
    (0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", "DHE-RSA-AES256-SHA256"),
    (0xC0AC, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", "ECDHE-ECDSA-AES128-CCM"),
    (0xC0AD, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM", "ECDHE-ECDSA-AES256-CCM"),
    (0xC09C, "TLS_RSA_WITH_AES_128_CCM", "AES128-CCM"),
    (0xC09D, "TLS_RSA_WITH_AES_256_CCM", "AES256-CCM"),
    (0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA", "CAMELLIA128-SHA"),
    (0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA", "CAMELLIA256-SHA"),
    (0x0096, "TLS_RSA_WITH_SEED_CBC_SHA", "SEED-SHA"),
    (0x0007, "TLS_RSA_WITH_IDEA_CBC_SHA", "IDEA-CBC-SHA"),
    (0xC012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "ECDHE-RSA-DES-CBC3-SHA"),
    (0xC008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA", "ECDHE-ECDSA-DES-CBC3-SHA"),
    (0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA"),
    (0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA", "EDH-RSA-DES-CBC3-SHA"),
    (0x0009, "TLS_RSA_WITH_DES_CBC_SHA", "DES-CBC-SHA"),
    (0xC011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA", "ECDHE-RSA-RC4-SHA"),
    (0xC007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", "ECDHE-ECDSA-RC4-SHA"),
    (0x0005, "TLS_RSA_WITH_RC4_128_SHA", "RC4-SHA"),
    (0x0004, "TLS_RSA_WITH_RC4_128_MD5", "RC4-MD5"),
    (0xC010, "TLS_ECDHE_RSA_WITH_NULL_SHA", "ECDHE-RSA-NULL-SHA"),
    (0xC006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA", "ECDHE-ECDSA-NULL-SHA"),
    (0x003B, "TLS_RSA_WITH_NULL_SHA256", "NULL-SHA256"),
    (0x0002, "TLS_RSA_WITH_NULL_SHA", "NULL-SHA"),
    (0x0001, "TLS_RSA_WITH_NULL_MD5", "NULL-MD5"),
    (0xC018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA", "AECDH-AES128-SHA"),
    (0x00A6, "TLS_DH_anon_WITH_AES_128_GCM_SHA256", "ADH-AES128-GCM-SHA256"),
    (0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA", "ADH-AES128-SHA"),
    (0x0018, "TLS_DH_anon_WITH_RC4_128_MD5", "ADH-RC4-MD5"),
    (0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA", "EXP-EDH-RSA-DES-CBC-SHA"),
    (0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", "EXP-DES-CBC-SHA"),
    (0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5", "EXP-RC4-MD5"),
)
ALL_SUITES = INTERMEDIATE + OUTSIDE
BY_CODE = {suite.code: suite for suite in ALL_SUITES}

_GROUPS = (
    0x001D,
    0x0017,
    0x0018,
    0x0019,
    0x001E,
    0x0100,
    0x0101,
)  # x25519 P-256/384/521 x448 ffdhe
_SIGNATURES = (
    0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806,
    0x0401, 0x0501, 0x0601, 0x0303, 0x0203, 0x0301, 0x0201,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ServerHello:
    version: int
    suite: int


def _extension(kind: int, body: bytes) -> bytes:
    return struct.pack("!HH", kind, len(body)) + body


def _vector16(values: Sequence[int]) -> bytes:
    data = b"".join(struct.pack("!H", v) for v in values)
    return struct.pack("!H", len(data)) + data


def client_hello(version: int, suites: Sequence[int], server_name: str | None) -> bytes:
    """A TLS 1.2-or-older ClientHello offering ``version`` as its highest and ``suites``."""
    extensions = b""
    if server_name:
        name = server_name.encode("idna")
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        extensions += _extension(0x0000, struct.pack("!H", len(entry)) + entry)
    extensions += _extension(0x000A, _vector16(_GROUPS))
    extensions += _extension(0x000B, b"\x01\x00")  # ec_point_formats: uncompressed
    extensions += _extension(0x000D, _vector16(_SIGNATURES))
    extensions += _extension(0xFF01, b"\x00")  # renegotiation_info, empty (RFC 5746)
    ciphers = _vector16([*suites, 0x00FF][:0x7FFF])
    body = (
        struct.pack("!H", version)
        + os.urandom(32)
        + b"\x00"  # no session id
        + ciphers
        + b"\x01\x00"  # compression: null only
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    # record layer version 1.0 for every offer, as browsers do: some servers drop others
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def parse_server_hello(record_type: int, payload: bytes) -> ServerHello | None:
    if record_type != 0x16 or len(payload) < 4 + 2 + 32 + 1 or payload[0] != 0x02:
        return None  # an alert (0x15) or anything that is not a ServerHello: refused
    body = payload[4:]
    version = struct.unpack("!H", body[0:2])[0]
    session_length = body[34]
    offset = 35 + session_length
    if len(body) < offset + 2:
        return None
    suite = struct.unpack("!H", body[offset : offset + 2])[0]
    return ServerHello(version, suite)


async def offer(
    host: str, port: int, version: int, suites: Sequence[int], server_name: str | None
) -> ServerHello | None:
    """Send one ClientHello; the ServerHello, or None when the server refused (an alert, a
    closed or reset connection, silence). Failing to connect at all raises ``OSError``."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
    try:
        writer.write(client_hello(version, suites, server_name))
        await writer.drain()
        header = await asyncio.wait_for(reader.readexactly(5), TIMEOUT)
        length = struct.unpack("!H", header[3:5])[0]
        payload = await asyncio.wait_for(reader.readexactly(min(length, 1 << 14)), TIMEOUT)
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
        return None
    finally:
        writer.close()
    return parse_server_hello(header[0], payload)


def register(registry: Registry) -> None:
    """No checks here: the TLS probes ``live_transport`` uses."""
