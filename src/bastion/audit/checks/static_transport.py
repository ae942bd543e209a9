"""Static checks of practice 4, encryption in transit: the URLs the document tells clients to use.

A client generated from the document calls the servers it lists and fetches tokens from the URLs
its security schemes name; a plain ``http://`` there sends credentials and data in clear. Loopback
servers (``localhost``, ``127.0.0.1``, ``[::1]``) are a developer's convenience and are not
reported; relative server URLs inherit the scheme the document was served with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from bastion.audit import openapi
from bastion.audit.checks.verdict import verdict
from bastion.audit.model import CheckInfo, Finding, Kind, Practice, Registry, Severity

HTTPS_SERVERS = CheckInfo(
    id="static.https-servers",
    title="Servers are HTTPS only",
    practice=Practice.ENCRYPTION,
    severity=Severity.HIGH,
    kind=Kind.STATIC,
    criterion="Every servers[].url (document, path and operation level) is https:// or relative;"
    " plain http:// is allowed only for loopback hosts.",
    rationale="Every request to an http:// server, with its credentials, crosses the network in"
    " clear and can be read or changed by anyone on the path.",
    references=("OWASP API8:2023", "ASVS 5.0 V12 (Secure Communication)", "RFC 9110 §4.2.2"),
)
HTTPS_SECURITY_URLS = CheckInfo(
    id="static.https-security-urls",
    title="OAuth and OpenID Connect URLs are HTTPS",
    practice=Practice.ENCRYPTION,
    severity=Severity.HIGH,
    kind=Kind.STATIC,
    criterion="Every authorizationUrl, tokenUrl, refreshUrl and openIdConnectUrl is https://.",
    rationale="Token endpoints receive client secrets and hand out tokens; over plain HTTP both"
    " can be stolen in transit.",
    references=("RFC 6749 §3.1", "RFC 9700 §4.1", "ASVS 5.0 V10 (OAuth and OIDC)"),
)

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_FLOW_URLS = ("authorizationUrl", "tokenUrl", "refreshUrl")


def _plain(url: str, *, allow_loopback: bool) -> bool:
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return False
    return not (allow_loopback and (parts.hostname or "").lower() in _LOOPBACK)


def https_servers(document: Mapping[str, Any]) -> list[Finding]:
    places: list[tuple[Any, str]] = [(document.get("servers"), "/servers")]
    for path in sorted(document.get("paths") or {}):
        item = document["paths"][path]
        if isinstance(item, Mapping):
            places.append((item.get("servers"), openapi.pointer("paths", path, "servers")))
    places.extend(
        (op.node.get("servers"), f"{op.location}/servers") for op in openapi.operations(document)
    )
    problems: list[tuple[str, str]] = []
    examined = 0
    for servers, where in places:
        for index, server in enumerate(servers if isinstance(servers, list) else []):
            url = str(server.get("url", "")) if isinstance(server, Mapping) else ""
            examined += 1
            if _plain(url, allow_loopback=True):
                problems.append((f"{where}/{index}/url", f"server {url} is plain HTTP"))
    return verdict(
        HTTPS_SERVERS,
        problems,
        f"all {examined} server URLs are HTTPS, relative or loopback",
        examined=examined,
        nothing="the document lists no server",
    )


def https_security_urls(document: Mapping[str, Any]) -> list[Finding]:
    problems: list[tuple[str, str]] = []
    examined = 0
    for name, (scheme, where) in openapi.schemes(document).items():
        urls: list[tuple[str, str]] = []
        if isinstance(scheme.get("openIdConnectUrl"), str):
            urls.append((scheme["openIdConnectUrl"], f"{where}/openIdConnectUrl"))
        flows = scheme.get("flows") or {}
        for flow in sorted(flows):
            body = flows[flow]
            for key in _FLOW_URLS:
                if isinstance(body, Mapping) and isinstance(body.get(key), str):
                    urls.append((body[key], f"{where}/flows/{flow}/{key}"))
        for url, place in urls:
            examined += 1
            if _plain(url, allow_loopback=False):
                problems.append((place, f"security scheme {name} uses plain-HTTP URL {url}"))
    return verdict(
        HTTPS_SECURITY_URLS,
        problems,
        f"all {examined} OAuth / OpenID Connect URLs are HTTPS",
        examined=examined,
        nothing="no security scheme names an OAuth or OpenID Connect URL",
    )


def register(registry: Registry) -> None:
    registry.add_static(HTTPS_SERVERS, https_servers)
    registry.add_static(HTTPS_SECURITY_URLS, https_security_urls)
