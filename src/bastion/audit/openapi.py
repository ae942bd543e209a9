"""The OpenAPI document as the audit reads it: loaded from a file or a URL, walked operation by
operation, with local ``$ref`` pointers followed.

Static checks report places as RFC 6901 JSON pointers into the document as written (a shared
schema is reported once, where it is defined, not at every operation that refers to it), so that
a finding points to the line to fix and its fingerprint survives unrelated edits.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bastion.errors import ConfigError
from bastion.validation.document import load_document

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
WRITES = frozenset({"post", "put", "patch", "delete"})
_MAX_FETCH_BYTES = 64 * 1024 * 1024


def load(
    source: str, *, verify: bool | ssl.SSLContext = True, timeout: float = 30.0
) -> dict[str, Any]:
    """The document at ``source``: a local file, or an ``http(s)://`` URL fetched once (without
    the operator's ``--auth`` credentials: a document host is not the API)."""
    if urlsplit(source).scheme not in ("http", "https"):
        return load_document(Path(source))
    origin = urlsplit(source)[:2]
    body = bytearray()
    try:
        # Redirects are followed only within the document's own scheme and host (a document
        # URL must not become a way to make the auditor fetch from elsewhere), and the body is
        # read up to the limit, never whole first.
        with httpx.Client(follow_redirects=False, timeout=timeout, verify=verify) as client:
            url = source
            for _ in range(5):
                with client.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = str(response.url.join(response.headers["location"]))
                        if urlsplit(url)[:2] != origin:
                            raise ConfigError(
                                f"--openapi {source}: redirected to another origin; expected"
                                " the document at its URL (give the final URL instead)"
                            )
                        continue
                    if response.status_code != 200:
                        raise ConfigError(
                            f"--openapi {source}: answered {response.status_code}; expected 200"
                            " and a document"
                        )
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > _MAX_FETCH_BYTES:
                            raise ConfigError(
                                f"--openapi {source}: larger than {_MAX_FETCH_BYTES} bytes"
                            )
                    break
            else:
                raise ConfigError(f"--openapi {source}: too many redirects")
    except httpx.HTTPError as exc:
        raise ConfigError(
            f"--openapi {source}: cannot be fetched ({exc.__class__.__name__})"
        ) from None
    with tempfile.TemporaryDirectory(prefix="bastion-audit-") as folder:
        path = Path(folder) / "openapi.yaml"
        path.write_bytes(bytes(body))
        try:
            return load_document(path)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(str(path), source)) from None


def escape(part: str | int) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer(*parts: str | int) -> str:
    """``pointer("paths", "/users/{id}", "get")`` -> ``/paths/~1users~1{id}/get``."""
    return "".join("/" + escape(p) for p in parts)


def lookup(document: Mapping[str, Any], ref: str) -> Any:
    """The node a local ``#/...`` reference names, or ``None`` (remote or broken references)."""
    if not ref.startswith("#"):
        return None
    node: Any = document
    for raw in ref[1:].split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def resolve(document: Mapping[str, Any], node: Any, where: str) -> tuple[Any, str]:
    """Follow ``$ref`` chains from ``node`` (found at ``where``): the target and its pointer."""
    seen: set[str] = set()
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if ref in seen or not ref.startswith("#"):
            break
        seen.add(ref)
        target = lookup(document, ref)
        if target is None:
            break
        node, where = target, ref[1:]
    return node, where


@dataclass(frozen=True, slots=True)
class Operation:
    path: str
    method: str  # lower case, as in the document
    node: Mapping[str, Any]
    location: str  # JSON pointer of the operation object

    @property
    def write(self) -> bool:
        return self.method in WRITES

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"


def operations(document: Mapping[str, Any]) -> list[Operation]:
    """Every operation, in a stable order (path, then the usual method order)."""
    found: list[Operation] = []
    paths = document.get("paths") or {}
    for path in sorted(paths):
        item, _ = resolve(document, paths[path], pointer("paths", path))
        if not isinstance(item, Mapping):
            continue
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, Mapping):
                found.append(Operation(path, method, op, pointer("paths", path, method)))
    return found


def parameters(
    document: Mapping[str, Any], op: Operation
) -> Iterator[tuple[Mapping[str, Any], str]]:
    """The operation's parameters (path-item ones included unless overridden), resolved."""
    item = (document.get("paths") or {}).get(op.path) or {}
    chosen: dict[tuple[str, str], tuple[Mapping[str, Any], str]] = {}
    sources = ((item, pointer("paths", op.path)), (op.node, op.location))
    for owner, base in sources:
        for index, raw in enumerate(owner.get("parameters") or []):
            param, where = resolve(document, raw, f"{base}/parameters/{index}")
            if isinstance(param, Mapping):
                key = (str(param.get("name", "")), str(param.get("in", "")))
                chosen[key] = (param, where)
    yield from chosen.values()


def security(document: Mapping[str, Any], op: Operation) -> list[Any] | None:
    """The operation's security requirements (its own, else the document's); ``None``: none."""
    value = op.node.get("security", document.get("security"))
    return value if isinstance(value, list) else None


def schemes(document: Mapping[str, Any]) -> dict[str, tuple[Mapping[str, Any], str]]:
    """Security schemes by name, resolved, with their pointers."""
    found: dict[str, tuple[Mapping[str, Any], str]] = {}
    table = (document.get("components") or {}).get("securitySchemes") or {}
    for name in sorted(table):
        scheme, where = resolve(
            document, table[name], pointer("components", "securitySchemes", name)
        )
        if isinstance(scheme, Mapping):
            found[name] = (scheme, where)
    return found


def responses(
    document: Mapping[str, Any], op: Operation
) -> dict[str, tuple[Mapping[str, Any], str]]:
    """The operation's responses by status (``"401"``, ``"4XX"``, ``"default"``), resolved."""
    found: dict[str, tuple[Mapping[str, Any], str]] = {}
    table = op.node.get("responses") or {}
    for status in table:
        node, where = resolve(document, table[status], f"{op.location}/responses/{escape(status)}")
        if isinstance(node, Mapping):
            found[str(status)] = (node, where)
    return found


def has_header(response: Mapping[str, Any], name: str) -> bool:
    headers = response.get("headers") or {}
    return any(str(key).lower() == name.lower() for key in headers)
