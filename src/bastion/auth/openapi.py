"""Requirements from the OpenAPI document: each operation's ``security`` (or the document's).

With ``openapi:`` set (and ``auth.openapi_security``, the default), the requirement of a request
comes from the operation it targets (method and path template, under the path of the first
``servers`` URL):

- ``security: []`` makes the operation public (explicitly, as the issue asks);
- a list of requirement objects means *any one of them* (OpenAPI's OR), each naming schemes
  that must *all* hold (AND) with their scopes; an empty object ``{}`` among them makes
  authentication optional;
- a scheme of type ``apiKey`` is met by a bastion API key, ``http`` ``bearer``, ``oauth2`` and
  ``openIdConnect`` by a bearer token; other types (``http`` ``basic``, ``mutualTLS``) cannot be
  checked by bastion and accept any bastion credential (logged at start);
- an operation without ``security`` inherits the document's; with neither, the route's (or
  ``auth.default``) applies, as it does for paths the document does not describe.

A route whose ``auth`` sets ``require``, ``scopes`` or ``method_scopes`` overrides the document
for every request it serves (config overrides). Lookups are cached per method and path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bastion.config.models import BastionConfig
from bastion.errors import ConfigError
from bastion.validation.document import load_document

logger = logging.getLogger("bastion.auth")

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
API_KEY = frozenset({"api_key"})
BEARER = frozenset({"jwt", "oidc"})
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Alternative:
    """One security requirement object: the credential kinds that can meet it (``None``: any)
    and the scopes the caller must hold."""

    methods: frozenset[str] | None
    scopes: frozenset[str]

    def met_by(self, method: str, scopes: frozenset[str]) -> bool:
        return (self.methods is None or method in self.methods) and self.scopes <= scopes


@dataclass(frozen=True, slots=True)
class OperationPolicy:
    """An operation's requirement: ``public``, ``optional`` or ``required`` with alternatives."""

    require: str
    any_of: tuple[Alternative, ...] = ()
    operation: str = ""

    def satisfied_by(self, method: str, scopes: frozenset[str]) -> bool:
        return not self.any_of or any(alt.met_by(method, scopes) for alt in self.any_of)

    def accepts(self, method: str) -> bool:
        """Whether a credential of this kind could meet some alternative (scopes aside)."""
        return not self.any_of or any(
            alt.methods is None or method in alt.methods for alt in self.any_of
        )


class OperationTable:
    """Operation policies by method and path, for requests to look up."""

    def __init__(
        self,
        exact: dict[str, dict[str, OperationPolicy]],
        templated: list[tuple[re.Pattern[str], dict[str, OperationPolicy]]],
    ) -> None:
        self.exact = exact
        self.templated = templated
        self._cache: dict[str, dict[str, OperationPolicy] | None] = {}

    def __len__(self) -> int:
        return sum(len(ops) for ops in self.exact.values()) + sum(
            len(ops) for _, ops in self.templated
        )

    def lookup(self, method: str, path: str) -> OperationPolicy | None:
        """The policy of the operation ``method path`` targets, or ``None`` (undescribed, or
        described without any ``security``)."""
        cache = self._cache
        if path in cache:
            operations = cache[path]
        else:
            operations = self.exact.get(path)
            if operations is None:
                for pattern, ops in self.templated:
                    if pattern.match(path):
                        operations = ops
                        break
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[path] = operations
        if operations is None:
            return None
        found = operations.get(method)
        if found is None and method == "HEAD":
            found = operations.get("GET")
        return found


def _scheme_methods(
    name: str, schemes: Mapping[str, Any], warned: set[str]
) -> frozenset[str] | None:
    scheme = schemes.get(name)
    kind = scheme.get("type") if isinstance(scheme, Mapping) else None
    if kind == "apiKey":
        return API_KEY
    if kind in ("oauth2", "openIdConnect"):
        return BEARER
    if (
        kind == "http"
        and isinstance(scheme, Mapping)
        and str(scheme.get("scheme", "")).lower() == "bearer"
    ):
        return BEARER
    if name not in warned:
        warned.add(name)
        logger.warning(
            "auth: OpenAPI security scheme %r (%s) is not one bastion checks; operations"
            " requiring it accept any bastion credential",
            name,
            kind or "undefined",
        )
    return None


def _policy(
    security: object, schemes: Mapping[str, Any], warned: set[str], where: str
) -> OperationPolicy:
    if not isinstance(security, list):
        raise ConfigError(f"openapi: {where}: security is not a list; expected a list")
    if not security:
        return OperationPolicy("public", operation=where)
    alternatives: list[Alternative] = []
    for requirement in security:
        if not isinstance(requirement, Mapping):
            raise ConfigError(f"openapi: {where}: a security requirement is not a mapping")
        if not requirement:
            return OperationPolicy("optional", operation=where)
        methods: frozenset[str] | None = None
        scopes: set[str] = set()
        for name, wanted in requirement.items():
            if not isinstance(wanted, list) or not all(isinstance(s, str) for s in wanted):
                raise ConfigError(f"openapi: {where}: scopes of {name!r} are not strings")
            scopes.update(wanted)
            kinds = _scheme_methods(str(name), schemes, warned)
            if kinds is not None:
                methods = kinds if methods is None else methods & kinds
        alternatives.append(Alternative(methods, frozenset(scopes)))
    return OperationPolicy("required", tuple(alternatives), operation=where)


def _base_path(document: Mapping[str, Any]) -> str:
    servers = document.get("servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], Mapping):
        return ""
    url = str(servers[0].get("url", ""))
    if "{" in url:
        return ""
    path = urlsplit(url).path if "://" in url else url
    return path.rstrip("/")


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^{}/]+\})", template)
    regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$")


def compile_operations(document: Mapping[str, Any]) -> OperationTable:
    """The table of ``document``'s operations that say (or inherit) a ``security``."""
    components = document.get("components")
    schemes = components.get("securitySchemes", {}) if isinstance(components, Mapping) else {}
    schemes = schemes if isinstance(schemes, Mapping) else {}
    default = document.get("security")
    base = _base_path(document)
    warned: set[str] = set()
    exact: dict[str, dict[str, OperationPolicy]] = {}
    templated: list[tuple[int, re.Pattern[str], dict[str, OperationPolicy]]] = []
    paths = document.get("paths") or {}
    for template, item in paths.items():
        if not isinstance(item, Mapping) or not str(template).startswith("/"):
            continue
        operations: dict[str, OperationPolicy] = {}
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, Mapping):
                continue
            security = operation.get("security", default)
            if security is None:
                continue
            where = f"{method.upper()} {template}"
            operations[method.upper()] = _policy(security, schemes, warned, where)
        if not operations:
            continue
        full = base + str(template)
        if "{" in full:
            literal = len(re.sub(r"\{[^{}/]+\}", "", full))
            templated.append((literal, _pattern(full), operations))
        else:
            exact[full] = operations
    templated.sort(key=lambda entry: -entry[0])  # concrete segments first (OpenAPI §4.8.8)
    return OperationTable(exact, [(pattern, ops) for _, pattern, ops in templated])


def operation_policies(config: BastionConfig) -> OperationTable | None:
    """The operation table of ``config.openapi``, or ``None`` without a document (or when it
    describes no security at all)."""
    if config.openapi is None:
        return None
    table = compile_operations(load_document(config.openapi))
    if not len(table):
        return None
    logger.info("auth: %d operations take their requirements from the OpenAPI document", len(table))
    return table
