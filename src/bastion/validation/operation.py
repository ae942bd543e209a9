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
from urllib.parse import unquote_plus

import jsonschema_rs

from bastion.pipeline.decisions import ProblemField
from bastion.pipeline.request import Request
from bastion.validation.bodies import media_type, select_media
from bastion.validation.errors import pointer, violations
from bastion.validation.params import NOT_JSON, Param, scalar
from bastion.validation.responses import Responses

MAX_QUERY_FIELDS = 256
NO_VIOLATIONS: list[ProblemField] = []  # shared, never appended to
# A parameter sent twice could be read as the first value here and the last one upstream
# (HTTP parameter pollution): a value that is not an array must come once.
REPEATED = "is repeated; the document describes one value"


@dataclass(slots=True)
class Location:
    """The parameters of one location (path, query, header, cookie)."""

    params: dict[str, Param]
    exploded: tuple[Param, ...] = ()  # form+explode objects: their properties are query keys
    deep: tuple[Param, ...] = ()  # deepObject: keys name[property]


@dataclass(slots=True)
class Media:
    """One documented request media type: how to read it, and its compiled schema."""

    kind: str  # json | form | multipart | other
    validator: jsonschema_rs.Validator | None
    fields: dict[str, Param] = field(default_factory=dict)

    def form_object(self, pairs: list[tuple[str, Any]]) -> tuple[dict[str, Any], list[str]]:
        """Form fields as the object the schema describes (arrays gathered, scalars coerced),
        and the names of fields that are not arrays but came more than once."""
        value: dict[str, Any] = {}
        repeated: list[str] = []
        fields = self.fields
        for name, text in pairs:
            param = fields.get(name)
            if param is not None and param.shape == "array":
                value.setdefault(name, []).append(scalar(text, param.item_type))
                continue
            if param is None:  # undocumented: a repeated field reads as an array
                earlier = value.get(name)
                if earlier is None:
                    value[name] = text
                elif isinstance(earlier, list):
                    earlier.append(text)
                else:
                    value[name] = [earlier, text]
                continue
            if name in value and name not in repeated:
                repeated.append(name)
            if param.shape == "primitive":
                value[name] = scalar(text, param.scalar_type)
            else:
                value[name] = param.decode(text)
        return value, repeated


@dataclass(slots=True)
class RequestBody:
    required: bool
    media: dict[str, Media]
    wildcards: tuple[tuple[str, Media], ...]  # ("application/", media) for application/*
    accepted: str  # documented media types, for the 415's detail
    _chosen: dict[str, Media | None] = field(default_factory=dict)

    def select(self, content_type: str | None) -> Media | None:
        """The documented media type a ``Content-Type`` header value selects; the answer is
        remembered per header value (clients send the same few)."""
        if content_type is None:
            return None
        chosen = self._chosen
        if content_type in chosen:
            return chosen[content_type]
        found = select_media(self.media, self.wildcards, media_type(content_type))
        if len(content_type) <= 128:
            if len(chosen) >= 64:
                chosen.clear()
            chosen[content_type] = found
        return found


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
    read_only: frozenset[tuple[str, ...]]  # read-only markers' places, to explain violations
    path_names: tuple[str, ...] = ()  # the template's variables, in order
    parameters: jsonschema_rs.Validator | None = None  # {path: {...}, query: {...}, ...}
    json_parameters: bool = False  # some parameter is serialised as JSON (``content``)
    # (index of the template variable, its parameter), for the documented path parameters
    path_params: tuple[tuple[int, Param], ...] = ()
    responses: Responses | None = None  # compiled only when responses are checked

    def check_parameters(
        self, request: Request, raw_path: list[str], strict: bool
    ) -> list[ProblemField]:
        """Every violation in the request's parameters (empty when they are all valid);
        ``raw_path`` holds the path's variables, in template order. All locations are checked
        by one compiled validator (``parameters``), in one call."""
        validator = self.parameters
        if validator is None and not (strict and request.query):
            return NO_VIOLATIONS
        out: list[ProblemField] = []
        values: dict[str, dict[str, Any]] = {}
        if self.path_params:
            values["path"] = {p.name: p.decode_path(raw_path[i]) for i, p in self.path_params}
        query = self.query
        if request.query:
            values["query"] = self._query(request.query, strict, out)
        elif query.params:
            values["query"] = {}
        if self.header.params:
            headers = request.headers
            found = {}
            for name, param in self.header.params.items():
                text = headers.get(param.key)
                if text is not None:
                    found[name] = param.decode(text)
                    if param.shape != "array" and headers.count(param.key) > 1:
                        out.append(ProblemField(pointer("/header", [name]), REPEATED))
            values["header"] = found
        if self.cookie.params:
            values["cookie"] = self._cookies(request, out)
        if self.json_parameters:
            for location, found in values.items():
                for name, value in found.items():
                    if value is NOT_JSON:
                        out.append(
                            ProblemField(pointer(f"/{location}", [name]), "is not valid JSON")
                        )
        if out:
            values = {
                location: {k: v for k, v in found.items() if v is not NOT_JSON}
                for location, found in values.items()
            }
        if validator is not None and not validator.is_valid(values):
            out.extend(violations(validator, values, "", self.read_only))
        return out

    def _query(self, text: str, strict: bool, out: list[ProblemField]) -> dict[str, Any]:
        query = self.query
        grouped = parse_query(text)
        values: dict[str, Any] = {}
        params = query.params
        if not params:
            used: set[str] = set()
        else:
            used = set()
            for name, found in grouped.items():
                param = params.get(name)
                if param is None:
                    continue
                used.add(name)
                if param.shape == "array" and param.explode and param.style == "form":
                    values[name] = [scalar(v, param.item_type) for v in found]
                    continue
                if len(found) > 1:
                    out.append(ProblemField(pointer("/query", [name]), REPEATED))
                if param.shape == "object" and param.explode and param.style == "form":
                    continue
                values[name] = param.decode(found[0])
            for param in query.exploded:
                members = {
                    key: scalar(grouped[key][0], kind)
                    for key, kind in param.property_types.items()
                    if key in grouped
                }
                for key in members:
                    single = param.property_types.get(key) != "array"
                    if single and len(grouped[key]) > 1 and key not in params:
                        out.append(ProblemField(pointer("/query", [key]), REPEATED))
                used.update(members)
                if members:
                    values[param.name] = members
            for param in query.deep:
                head = param.name + "["
                deep: dict[str, Any] = {}
                for key, found in grouped.items():
                    if key.startswith(head) and key.endswith("]"):
                        prop = key[len(head) : -1]
                        if len(found) > 1 and prop in param.property_types:
                            out.append(ProblemField(pointer("/query", [key]), REPEATED))
                        deep[prop] = scalar(found[0], param.property_types.get(prop))
                        used.add(key)
                if deep:
                    values[param.name] = deep
        if strict:
            for name in grouped:
                if name not in used:
                    out.append(
                        ProblemField(pointer("/query", [name]), "is not a documented parameter")
                    )
        return values

    def _cookies(self, request: Request, out: list[ProblemField]) -> dict[str, Any]:
        jar: dict[str, str] = {}
        params = self.cookie.params
        for header in request.headers.get_all("cookie"):
            for item in header.split(";"):
                name, eq, value = item.strip().partition("=")
                if not eq:
                    continue
                if name not in jar:
                    jar[name] = value
                elif name in params:
                    out.append(ProblemField(pointer("/cookie", [name]), REPEATED))
        return {
            name: param.decode(jar[name])
            for name, param in self.cookie.params.items()
            if name in jar
        }


def parse_query(text: str) -> dict[str, list[str]]:
    """``a=1&b=x+y&a=2`` as ``{"a": ["1", "2"], "b": ["x y"]}``; decoding is paid only by the
    names and values that are encoded. At most ``MAX_QUERY_FIELDS`` fields are read."""
    grouped: dict[str, list[str]] = {}
    parts = text.split("&", MAX_QUERY_FIELDS)
    if len(parts) > MAX_QUERY_FIELDS:  # the rest of the query, unsplit: not read
        del parts[MAX_QUERY_FIELDS:]
    for part in parts:
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        found = grouped.get(name)
        if found is None:
            grouped[name] = [value]
        else:
            found.append(value)
    return grouped
