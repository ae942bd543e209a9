"""One compiled operation: what a request to it may carry, checked with precomputed tables.

Everything that depends only on the document (which parameters, their shapes, the validators,
the media types) is built once by :mod:`bastion.validation.compiler`; per request an operation
reads only what its request carries and what it documents: no query string parsing for an
operation without query parameters (unless strict mode must refuse unknown ones), no header
index for one without header parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import jsonschema_rs

from bastion.pipeline.decisions import ProblemField
from bastion.pipeline.request import Request
from bastion.validation.errors import pointer, violations
from bastion.validation.params import NOT_JSON, Param, scalar

MAX_QUERY_FIELDS = 256


@dataclass(slots=True)
class Location:
    """The parameters of one location (path, query, header, cookie) and their validator."""

    prefix: str
    params: dict[str, Param]
    validator: jsonschema_rs.Validator | None
    exploded: tuple[Param, ...] = ()  # form+explode objects: their properties are query keys
    deep: tuple[Param, ...] = ()  # deepObject: keys name[property]
    required: bool = False  # some parameter here is required

    def validate(self, values: dict[str, Any], document: Any, out: list[ProblemField]) -> None:
        for name, value in values.items():
            if value is NOT_JSON:
                out.append(ProblemField(pointer(self.prefix, [name]), "is not valid JSON"))
        if out:
            values = {k: v for k, v in values.items() if v is not NOT_JSON}
        validator = self.validator
        if validator is not None and not validator.is_valid(values):
            out.extend(violations(validator, values, self.prefix, document))


@dataclass(slots=True)
class Media:
    """One documented request media type: how to read it, and its compiled schema."""

    kind: str  # json | form | multipart | other
    validator: jsonschema_rs.Validator | None
    fields: dict[str, Param] = field(default_factory=dict)

    def form_object(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        """Form fields as the object the schema describes: arrays gathered, scalars coerced."""
        value: dict[str, Any] = {}
        fields = self.fields
        for name, text in pairs:
            param = fields.get(name)
            if param is None:
                value[name] = text
            elif param.shape == "array":
                value.setdefault(name, []).append(scalar(text, param.item_type))
            elif param.shape == "primitive":
                value[name] = scalar(text, param.scalar_type)
            else:
                value[name] = param.decode(text)
        return value


@dataclass(slots=True)
class RequestBody:
    required: bool
    media: dict[str, Media]
    wildcards: tuple[tuple[str, Media], ...]  # ("application/", media) for application/*
    accepted: str  # documented media types, for the 415's detail

    def select(self, media_type: str) -> Media | None:
        found = self.media.get(media_type)
        if found is not None:
            return found
        for prefix, media in self.wildcards:
            if media_type.startswith(prefix):
                return media
        return None


@dataclass(slots=True)
class Operation:
    """A documented method on a documented path."""

    method: str
    template: str
    path: Location
    query: Location
    header: Location
    cookie: Location
    body: RequestBody | None
    document: Any  # the transformed document, to explain read-only violations
    path_names: tuple[str, ...] = ()  # the template's variables, in order

    def check_parameters(
        self, request: Request, raw_path: list[str], strict: bool
    ) -> list[ProblemField]:
        """Every violation in the request's parameters (empty when they are all valid);
        ``raw_path`` holds the path's variables, in template order."""
        out: list[ProblemField] = []
        if self.path.params:
            params = self.path.params
            values = {
                name: params[name].decode_path(raw)
                for name, raw in zip(self.path_names, raw_path, strict=False)
                if name in params
            }
            self.path.validate(values, self.document, out)
        query = self.query
        if (query.validator is not None and (request.query or query.required)) or (
            strict and request.query
        ):
            self._check_query(request.query, strict, out)
        if self.header.params:
            headers = request.headers
            values = {}
            for name, param in self.header.params.items():
                text = headers.get(name.lower())
                if text is not None:
                    values[name] = param.decode(text)
            self.header.validate(values, self.document, out)
        if self.cookie.params:
            self._check_cookies(request, out)
        return out

    def _check_query(self, text: str, strict: bool, out: list[ProblemField]) -> None:
        query = self.query
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
        grouped: dict[str, list[str]] = {}
        for name, value in pairs:
            grouped.setdefault(name, []).append(value)
        values: dict[str, Any] = {}
        used: set[str] = set()
        for name, found in grouped.items():
            param = query.params.get(name)
            if param is None:
                continue
            used.add(name)
            if param.shape == "array" and param.explode and param.style == "form":
                values[name] = [scalar(v, param.item_type) for v in found]
            elif param.shape == "object" and param.explode and param.style == "form":
                continue
            else:
                values[name] = param.decode(found[0])
        for param in query.exploded:
            members = {
                key: scalar(grouped[key][0], kind)
                for key, kind in param.property_types.items()
                if key in grouped
            }
            used.update(members)
            if members:
                values[param.name] = members
        for param in query.deep:
            head = param.name + "["
            members = {}
            for key, found in grouped.items():
                if key.startswith(head) and key.endswith("]"):
                    prop = key[len(head) : -1]
                    members[prop] = scalar(found[0], param.property_types.get(prop))
                    used.add(key)
            if members:
                values[param.name] = members
        if strict:
            for name in grouped:
                if name not in used:
                    out.append(ProblemField(pointer("/query", [name]),
                                            "is not a documented parameter"))  # fmt: skip
        query.validate(values, self.document, out)

    def _check_cookies(self, request: Request, out: list[ProblemField]) -> None:
        jar: dict[str, str] = {}
        for header in request.headers.get_all("cookie"):
            for item in header.split(";"):
                name, eq, value = item.strip().partition("=")
                if eq and name not in jar:
                    jar[name] = value
        values = {
            name: param.decode(jar[name])
            for name, param in self.cookie.params.items()
            if name in jar
        }
        self.cookie.validate(values, self.document, out)
