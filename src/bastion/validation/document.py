"""Loading an OpenAPI document: read once at start, refused with a precise reason when broken."""

from __future__ import annotations

import datetime
import functools
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import yaml

from bastion.config.loader import read_yaml
from bastion.errors import ConfigError
from bastion.validation.refs import FILES_KEY, Bundler, check_refs, escape, resolve_pointer

_MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
_VERSION = re.compile(r"^3\.[01]\.\d+$")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_document(path: Path) -> dict[str, Any]:
    """The parsed document at ``path`` (YAML or JSON), checked to be OpenAPI 3.0 or 3.1."""
    document = read_yaml(
        path, what="an OpenAPI document", prefix="openapi: ", max_bytes=_MAX_DOCUMENT_BYTES
    )
    version = str(document.get("openapi", ""))
    if not _VERSION.match(version):
        raise ConfigError(
            f"openapi: {path}: has openapi {version or '(missing)'!r}; expected 3.0.x or 3.1.x"
        )
    if not isinstance(document.get("paths", {}), dict):
        raise ConfigError(f"openapi: {path}: paths is not a mapping; expected a mapping")
    return document


@dataclass(frozen=True, slots=True)
class ApiDocument:
    """A loaded, self-contained, checked document: what the validation compiler reads."""

    path: Path
    version: str  # "3.0" or "3.1"
    document: dict[str, Any]
    files: tuple[Path, ...]  # embedded files, by their index under x-bastion-files

    def where(self, pointer: str) -> str:
        """``pointer`` in the bundled document as the operator wrote it: file and pointer."""
        prefix = f"/{FILES_KEY}/"
        if pointer.startswith(prefix):
            index, _, rest = pointer[len(prefix) :].partition("/")
            if index.isdigit() and int(index) < len(self.files):
                return f"{self.files[int(index)].name}#/{rest}"
        return pointer or "/"


def _normalised(value: Any) -> Any:
    """YAML's extras made JSON: integer keys (``200:``) become strings, dates ISO text."""
    if isinstance(value, dict):
        return {str(k): _normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def read_document(path: Path, label: str) -> Any:
    """The parsed file at ``path``: JSON with orjson (GitHub's description is 13 MB), YAML with
    the C loader when there is one; every failure names the file and the place."""
    try:
        size = os.stat(path).st_size
        if size > _MAX_DOCUMENT_BYTES:
            raise ConfigError(
                f"{label}: {size} bytes; expected an OpenAPI document of at most"
                f" {_MAX_DOCUMENT_BYTES}"
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{label}: no such file; expected an OpenAPI document") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot be read ({exc.__class__.__name__})") from None
    if raw.lstrip()[:1] in (b"{", b"["):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(
                f"{label}: not valid JSON at line {exc.lineno}, column {exc.colno}"
            ) from None
    try:
        return _normalised(yaml.load(raw, Loader=_YAML_LOADER))  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{label}: {problem}{place}; expected valid YAML or JSON") from None


@functools.cache
def _meta_validator(version: str) -> jsonschema_rs.Validator:
    name = f"oas-{version}.json"
    schema = orjson.loads(resources.files("bastion.validation.schemas").joinpath(name).read_bytes())
    return jsonschema_rs.validator_for(schema, mask="(value)")


def _meta_errors(document: dict[str, Any], version: str) -> list[tuple[str, str]]:
    """Violations of the OpenAPI Initiative's schema, as (pointer, message), deepest first."""
    found: list[tuple[str, str]] = []
    for error in _meta_validator(version).iter_errors(document):
        pointer = "".join(f"/{escape(str(t))}" for t in error.instance_path)
        found.append((pointer, error.message))
        if len(found) >= 20:
            break
    found.sort(key=lambda item: -item[0].count("/"))
    return found


def _inline_files(api: ApiDocument) -> tuple[Any, dict[str, str]]:
    """A view of the document where each ref into an embedded file is replaced by the file's
    part (one level: its own refs stay refs), so that the OpenAPI schema checks those parts at
    the place they are used; and, by pointer in the view, where each replaced part came from."""
    origins: dict[str, str] = {}
    prefix = f"#/{FILES_KEY}/"

    def walk(node: Any, pointer: str) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if (
                isinstance(ref, str)
                and ref.startswith(prefix)
                and not pointer.startswith(f"/{FILES_KEY}")
            ):
                origins[pointer] = api.where(ref[1:])
                try:
                    return resolve_pointer(api.document, ref[1:])
                except (KeyError, ValueError):
                    return node
            return {k: walk(v, f"{pointer}/{escape(str(k))}") for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{pointer}/{i}") for i, v in enumerate(node)]
        return node

    view = {k: walk(v, f"/{escape(k)}") for k, v in api.document.items() if k != FILES_KEY}
    return view, origins


def _origin(pointer: str, origins: dict[str, str]) -> str | None:
    for place, origin in origins.items():
        if pointer == place or pointer.startswith(place + "/"):
            return origin + pointer[len(place) :]
    return None


def load_api(path: Path) -> ApiDocument:
    """The document at ``path`` with its refs bundled, checked against the OpenAPI schema of
    its version: a broken document stops the start with the file and JSON pointer at fault."""
    label = f"openapi: {path}"
    document = read_document(path, label)
    if not isinstance(document, dict):
        raise ConfigError(f"{label}: top level is a {type(document).__name__}; expected a mapping")
    version = str(document.get("openapi", ""))
    if not _VERSION.match(version):
        raise ConfigError(
            f"{label}: has openapi {version or '(missing)'!r}; expected 3.0.x or 3.1.x"
        )
    bundler = Bundler(path, document, lambda p: read_document(p, f"openapi: {p}"), label)
    bundled = bundler.bundle()
    files = tuple(sorted(bundler.files, key=bundler.files.__getitem__))
    api = ApiDocument(path, version[:3], bundled, files)
    view, origins = _inline_files(api) if files else (bundled, {})
    errors = _meta_errors(view, api.version)
    if errors:
        pointer, message = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        where = _origin(pointer, origins) or pointer or "/"
        raise ConfigError(
            f"{label}: at {where}: {message}{more}; expected a valid OpenAPI {api.version} document"
        )
    check_refs(bundled, label, bundler.refs)
    return api
