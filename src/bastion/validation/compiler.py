"""The document compiled, once, into the tables the guard reads per request.

Order matters: every schema a request can meet is first made JSON Schema 2020-12 for requests
(:mod:`bastion.validation.schema`), then the transformed document becomes the one resource of a
jsonschema-rs registry (``urn:bastion:openapi``), then each operation's validators are compiled as
refs into it. Validators therefore share the document instead of copying it, and a recursive
schema stays a ref. The Python document is not kept (GitHub's would hold ~100 MB per worker):
only the registry's copy inside jsonschema-rs, and the places of read-only markers.

When responses are checked (``validation.responses``), a copy of the document taken before any
request transform is transformed for responses (``writeOnly`` refused, ``readOnly`` expected)
and becomes a second registry (``urn:bastion:openapi-responses``): the response validators
(monitor mode) are refs into it, and the shapes strip mode removes by are built from it.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import jsonschema_rs

from bastion.errors import ConfigError
from bastion.validation.bodies import is_json
from bastion.validation.document import ApiDocument
from bastion.validation.operation import Location, Media, Operation, RequestBody
from bastion.validation.params import Param
from bastion.validation.refs import escape, follow, resolve_pointer
from bastion.validation.responses import ResponseContent, ResponseMedia, Responses
from bastion.validation.router import PathTree, variables
from bastion.validation.schema import WRITE_ONLY, SchemaTransformer, read_only_places
from bastion.validation.shapes import ShapeBuilder

logger = logging.getLogger("bastion.validation")

BASE_URI = "urn:bastion:openapi"
RESPONSE_URI = "urn:bastion:openapi-responses"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# OpenAPI §4.8.12.1: these header parameters are ignored (other fields of the spec decide them)
_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
_LOCATIONS = ("path", "query", "header", "cookie")


@dataclass(slots=True)
class PathOperations:
    """The operations of one path template, and the ``Allow`` header its 405 sends."""

    template: str
    operations: dict[str, Operation]
    allow: str


@dataclass(slots=True)
class CompiledApi:
    tree: PathTree[PathOperations]
    operations: int
    seconds: float
    read_only: frozenset[tuple[str, ...]]  # places of read-only markers (see errors.py)
    write_only: frozenset[tuple[str, ...]] = frozenset()  # the same, in response schemas


def _uri(pointer: str, base: str = BASE_URI) -> str:
    return base + "#" + quote(pointer, safe="/~-._!$&'()*+,;=:@")


class Compiler:
    def __init__(
        self, api: ApiDocument, *, strict: bool, responses: frozenset[str] = frozenset()
    ) -> None:
        self.api = api
        self.document = api.document
        self.label = f"openapi: {api.path}"
        self.transformer = SchemaTransformer(api.document, api.version, strict=strict)
        self.registry: jsonschema_rs.Registry | None = None
        # responses: the modes in use ("monitor" needs validators, "strip" shapes)
        self.responses = responses
        self.response_document: dict[str, Any] = copy.deepcopy(api.document) if responses else {}
        self.response_transformer = SchemaTransformer(
            self.response_document, api.version, strict=strict, responses=True
        )
        self.response_schemas: list[tuple[str, ResponseMedia, str]] = []  # (where, media, ptr)

    def _follow(self, node: Any, pointer: str) -> tuple[Any, str]:
        """``node`` (at ``pointer``) with its refs followed, and the pointer where it ends."""
        for _ in range(64):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                return node, pointer
            ref = node["$ref"]
            follow(self.document, node, self.label, self.api.where(pointer))
            pointer = ref[1:]
            node = resolve_pointer(self.document, pointer)
        raise ConfigError(f"{self.label}: at {self.api.where(pointer)}: $ref chain too long")

    def _resolve(self, node: Any) -> Any:
        return self._follow(node, "")[0]

    def _params(
        self, item: Mapping[str, Any], item_ptr: str, op: Mapping[str, Any], op_ptr: str
    ) -> dict[tuple[str, str], tuple[dict[str, Any], str]]:
        found: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        for source, base in ((item, item_ptr), (op, op_ptr)):  # operation-level ones override
            params = source.get("parameters")
            if not isinstance(params, list):
                continue
            for i, raw in enumerate(params):
                spec, ptr = self._follow(raw, f"{base}/parameters/{i}")
                if not isinstance(spec, dict):
                    continue
                location = str(spec.get("in", ""))
                name = str(spec.get("name", ""))
                if location == "header" and name.lower() in _IGNORED_HEADERS:
                    continue
                if location in _LOCATIONS:
                    found[(location, name)] = (spec, ptr)
        return found

    def _param_schema_ptr(self, spec: dict[str, Any], ptr: str) -> str | None:
        if "schema" in spec:
            self.transformer.transform(spec["schema"])
            return f"{ptr}/schema"
        content = spec.get("content")
        if isinstance(content, dict) and content:
            media = next(iter(content))
            entry = content[media]
            if isinstance(entry, dict) and "schema" in entry:
                self.transformer.transform(entry["schema"])
                return f"{ptr}/content/{escape(media)}/schema"
        return None

    def _validator(self, schema: Any) -> jsonschema_rs.Validator:
        return jsonschema_rs.Draft202012Validator(
            schema, registry=self.registry, validate_formats=True, mask="(value)"
        )

    def _location(
        self, location: str, params: list[tuple[dict[str, Any], str]]
    ) -> tuple[Location, dict[str, str]]:
        compiled: dict[str, Param] = {}
        refs: dict[str, str] = {}
        for spec, ptr in params:
            param = Param.compile(spec, location, self._resolve)
            compiled[param.name] = param
            schema_ptr = self._param_schema_ptr(spec, ptr)
            if schema_ptr is not None:
                refs[param.name] = schema_ptr
        values = list(compiled.values())
        return (
            Location(
                params=compiled,
                exploded=tuple(p for p in values if location == "query" and _exploded(p)),
                deep=tuple(p for p in values if p.style == "deepObject"),
            ),
            refs,
        )

    def _body(
        self, op: Mapping[str, Any], op_ptr: str
    ) -> tuple[RequestBody | None, dict[str, str]]:
        if "requestBody" not in op:
            return None, {}
        spec, ptr = self._follow(op["requestBody"], f"{op_ptr}/requestBody")
        content = spec.get("content") if isinstance(spec, dict) else None
        if not isinstance(content, dict):
            return None, {}
        media: dict[str, Media] = {}
        wildcards: list[tuple[str, Media]] = []
        refs: dict[str, str] = {}
        for name, entry in content.items():
            key = str(name).partition(";")[0].strip().lower()
            schema = entry.get("schema") if isinstance(entry, dict) else None
            if is_json(key) or key in ("*/*", "application/*"):
                kind = "json" if is_json(key) else "other"
            elif key == "application/x-www-form-urlencoded":
                kind = "form"
            elif key == "multipart/form-data":
                kind = "multipart"
            else:
                kind = "other"
            found = Media(kind, None)
            if schema is not None and kind != "other":
                self.transformer.transform(schema)
                refs[key] = f"{ptr}/content/{escape(str(name))}/schema"
                if kind in ("form", "multipart"):
                    holder = Param(name="", location="body")
                    holder.configure(schema, self._resolve)
                    for prop, prop_schema in self._properties(schema).items():
                        field = Param(name=prop, location="body")
                        field.configure(prop_schema, self._resolve)
                        found.fields[prop] = field
            if key == "*/*":
                wildcards.append(("", found))
            elif key.endswith("/*"):
                wildcards.insert(0, (key[:-1], found))
            else:
                media[key] = found
        body = RequestBody(
            required=bool(spec.get("required")),
            media=media,
            wildcards=tuple(wildcards),
            accepted=", ".join(str(n) for n in content),
        )
        return body, refs

    def _properties(self, schema: Any) -> dict[str, Any]:
        resolved = self._resolve(schema)
        found: dict[str, Any] = {}
        if not isinstance(resolved, dict):
            return found
        props = resolved.get("properties")
        if isinstance(props, dict):
            found.update(props)
        for member in resolved.get("allOf") or []:
            found.update(self._properties(member))
        return found

    def compile(self) -> CompiledApi:
        start = time.perf_counter()
        document = self.document
        pending: list[tuple[Operation, dict[str, dict[str, str]], dict[str, str]]] = []
        tree: PathTree[PathOperations] = PathTree(_bases(document))
        paths = document.get("paths") or {}
        count = 0
        for template, raw_item in paths.items():
            item_ptr = f"/paths/{escape(str(template))}"
            item, item_ptr = self._follow(raw_item, item_ptr)
            if not isinstance(item, dict) or not str(template).startswith("/"):
                continue
            operations: dict[str, Operation] = {}
            for method in METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                op_ptr = f"{item_ptr}/{method}"
                params = self._params(item, item_ptr, op, op_ptr)
                locations: dict[str, Location] = {}
                refs: dict[str, dict[str, str]] = {}
                for location in _LOCATIONS:
                    chosen = [v for (loc, _), v in params.items() if loc == location]
                    locations[location], refs[location] = self._location(location, chosen)
                body, body_refs = self._body(op, op_ptr)
                operation = Operation(
                    method=method.upper(),
                    template=str(template),
                    path=locations["path"],
                    query=locations["query"],
                    header=locations["header"],
                    cookie=locations["cookie"],
                    body=body,
                    read_only=frozenset(),
                    path_names=variables(str(template)),
                )
                operation.path_params = tuple(
                    (i, operation.path.params[name])
                    for i, name in enumerate(operation.path_names)
                    if name in operation.path.params
                )
                operation.json_parameters = any(
                    p.shape == "json" for where in locations.values() for p in where.params.values()
                )
                if self.responses:
                    operation.responses = self._responses(op_ptr, f"{method.upper()} {template}")
                operations[method.upper()] = operation
                pending.append((operation, refs, body_refs))
                count += 1
            if not operations:
                continue
            entry = tree.add(str(template), PathOperations(str(template), {}, ""))
            for method, operation in operations.items():
                if method in entry.operations:
                    logger.warning(
                        "validation: %s %s repeats %s %s; the first one serves it",
                        method,
                        template,
                        method,
                        entry.template,
                    )
                else:
                    entry.operations[method] = operation
            methods = list(entry.operations)
            if "GET" in entry.operations and "HEAD" not in entry.operations:
                methods.append("HEAD")
            entry.allow = ", ".join(methods)
        self.registry = jsonschema_rs.Registry(
            [(BASE_URI, document)], draft=jsonschema_rs.Draft202012
        )
        marked = self.transformer.read_only_marked
        read_only = read_only_places(document) if marked else frozenset()
        for operation, refs, body_refs in pending:
            operation.read_only = read_only
            self._compile_validators(operation, refs, body_refs)
        write_only = self._compile_responses()
        return CompiledApi(tree, count, time.perf_counter() - start, read_only, write_only)

    def _response_node(self, node: Any, pointer: str) -> tuple[Any, str]:
        """``node`` of the response copy with its refs followed (checked at load already)."""
        for _ in range(64):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                return node, pointer
            ref = node["$ref"]
            if not ref.startswith("#"):
                return None, pointer
            pointer = ref[1:]
            try:
                node = resolve_pointer(self.response_document, pointer)
            except (KeyError, ValueError):
                return None, pointer
        return None, pointer

    def _responses(self, op_ptr: str, where: str) -> Responses | None:
        """The operation's documented JSON responses, their schemas transformed for responses
        (validators and shapes come once the registry exists)."""
        op, _ = self._response_node(resolve_pointer(self.response_document, op_ptr), op_ptr)
        documented = op.get("responses") if isinstance(op, dict) else None
        if not isinstance(documented, dict):
            return None
        found = Responses()
        for code, raw in documented.items():
            spec, ptr = self._response_node(raw, f"{op_ptr}/responses/{escape(str(code))}")
            content = spec.get("content") if isinstance(spec, dict) else None
            described = ResponseContent()
            for name, entry in (content or {}).items() if isinstance(content, dict) else ():
                key = str(name).partition(";")[0].strip().lower()
                schema = entry.get("schema") if isinstance(entry, dict) else None
                if schema is None or not (is_json(key) or key in ("*/*", "application/*")):
                    continue
                self.response_transformer.transform(schema)
                media = ResponseMedia()
                self.response_schemas.append(
                    (where, media, f"{ptr}/content/{escape(str(name))}/schema")
                )
                if key.endswith("/*"):
                    described.wildcards.append((key[:-1], media))
                else:
                    described.media[key] = media
            described.wildcards.sort(key=lambda pair: -len(pair[0]))  # type/* before */*
            status = str(code).upper()
            if status == "DEFAULT":
                found.default = described
            elif len(status) == 3 and status[0] in "12345" and status[1:] == "XX":
                found.ranges[int(status[0])] = described
            elif status.isdigit():
                found.exact[int(status)] = described
        return found

    def _compile_responses(self) -> frozenset[tuple[str, ...]]:
        """Validators (monitor) and shapes (strip) for every documented JSON response; the
        places of write-only markers, to explain violations."""
        if not self.responses:
            return frozenset()
        document = self.response_document
        registry = jsonschema_rs.Registry(
            [(RESPONSE_URI, document)], draft=jsonschema_rs.Draft202012
        )
        shapes = ShapeBuilder(lambda pointer: resolve_pointer(document, pointer))
        for where, media, ptr in self.response_schemas:
            if "strip" in self.responses:
                media.shape = shapes.build(resolve_pointer(document, ptr))
            if "monitor" not in self.responses:
                continue
            try:
                media.validator = jsonschema_rs.Draft202012Validator(
                    {"$ref": _uri(ptr, RESPONSE_URI)},
                    registry=registry,
                    validate_formats=True,
                    mask="(value)",
                )
            except (ValueError, jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError):
                raise ConfigError(
                    f"{self.label}: at {self.api.where(ptr)}: {where}: a response schema does"
                    " not compile; expected valid JSON Schema"
                ) from None
        marked = self.response_transformer.read_only_marked
        return read_only_places(document, WRITE_ONLY) if marked else frozenset()

    def _compile_validators(
        self, operation: Operation, refs: dict[str, dict[str, str]], body_refs: dict[str, str]
    ) -> None:
        where = f"{operation.method} {operation.template}"
        try:
            locations: dict[str, Any] = {}
            for location in _LOCATIONS:
                target: Location = getattr(operation, location)
                if not target.params:
                    continue
                properties = {name: {"$ref": _uri(ptr)} for name, ptr in refs[location].items()}
                required = [name for name, p in target.params.items() if p.required]
                locations[location] = {
                    "type": "object",
                    "properties": properties,
                    "required": required,
                }
            if locations:
                operation.parameters = self._validator({"type": "object", "properties": locations})
            if operation.body is not None:
                for key, ptr in body_refs.items():
                    media = operation.body.media.get(key) or next(
                        m for prefix, m in operation.body.wildcards if key in (prefix + "*", "*/*")
                    )
                    media.validator = self._validator({"$ref": _uri(ptr)})
        except (ValueError, jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError) as exc:
            place = ""
            if isinstance(exc, jsonschema_rs.ValidationError) and exc.instance_path:
                place = (
                    "at "
                    + self.api.where(
                        "".join(f"/{escape(str(token))}" for token in exc.instance_path)
                    )
                    + ": "
                )
            reason = (str(exc).strip().splitlines() or ["?"])[0][:200]
            raise ConfigError(
                f"{self.label}: {place}{where}: a schema does not compile ({reason});"
                " expected valid JSON Schema"
            ) from None


def _exploded(param: Param) -> bool:
    """A query object whose properties are query parameters of their own (form, explode)."""
    return param.shape == "object" and param.explode and param.style == "form"


def _bases(document: Mapping[str, Any]) -> tuple[str, ...]:
    """The path of every ``servers`` URL (variables set to their defaults); '' without any."""
    servers = document.get("servers")
    bases: list[str] = []
    if isinstance(servers, list):
        for server in servers:
            if not isinstance(server, Mapping):
                continue
            url = str(server.get("url", ""))
            variables = server.get("variables")
            if isinstance(variables, Mapping):
                for name, spec in variables.items():
                    default = spec.get("default", "") if isinstance(spec, Mapping) else ""
                    url = url.replace("{" + str(name) + "}", str(default))
            path = urlsplit(url).path if "://" in url else url
            bases.append(path.rstrip("/"))
    return tuple(bases) or ("",)


def compile_api(
    api: ApiDocument, *, strict: bool, responses: frozenset[str] = frozenset()
) -> CompiledApi:
    """``api`` compiled (see the module docstring); ``responses`` are the response modes in
    use (``monitor``, ``strip``), none by default."""
    return Compiler(api, strict=strict, responses=responses).compile()
