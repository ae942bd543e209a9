"""Walks a request's values (path segments, query parameters, named headers, every string of a
body) through the detector, and reports the first injection found and where.

Values are inspected as the upstream will read them: percent-decoded (and decoded a second time
when the result still holds escapes, a classic filter bypass); JSON object member names are
inspected as well as values; a body whose type is not understood is inspected as one text. A
finding names its place but never carries the value; a finding inside a name (a JSON member
name, a query parameter name) points at the enclosing object, so the name is not echoed either.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, unquote_plus

from bastion.config.injection import Kind, Location
from bastion.pipeline.request import Request
from bastion.validation.injection.engine import Detector
from bastion.validation.injection.exemptions import Exemptions, escape_token
from bastion.validation.injection.members import Members, parse_json
from bastion.validation.injection.xml_body import UnsafeXML, xml_values

_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')
_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,200})"|([^\s;]{1,200}))', re.IGNORECASE)
_PART_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Finding:
    """An injection of ``kind`` in ``where``; ``location`` is the parameter or header name, the
    path segment number, or the JSON pointer into the body ("" for the body as a whole)."""

    kind: Kind
    where: Location
    location: str
    in_name: bool = False

    @property
    def pointer(self) -> str:
        """A JSON pointer into the request seen as ``{path, query, header, body}``."""
        if self.where == "body":
            return "/body" + self.location
        return f"/{self.where}/{escape_token(self.location)}" if self.location else f"/{self.where}"


class TooManyValues(Exception):
    """The request holds more strings than ``injection.max_values``."""


def _decoded(value: str, plus: bool) -> str:
    if "%" not in value and not (plus and "+" in value):
        return value
    return unquote_plus(value) if plus else unquote(value)


def _media_type(content_type: str | None) -> str:
    if content_type is None:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


class Inspector:
    """One request's walk; ``budget`` counts down the values still allowed.

    Clean values are remembered for the rest of the request: bodies repeat themselves (a status
    in every item of a list), and a repeated value then costs a set lookup, not a scan.
    """

    __slots__ = ("budget", "clean", "detector", "exempt")

    def __init__(self, detector: Detector, exempt: Exemptions, budget: int) -> None:
        self.detector = detector
        self.exempt = exempt
        self.budget = budget
        self.clean: set[str] = set()

    def find(self, value: str, skip: frozenset[Kind]) -> Kind | None:
        self.budget -= 1
        if self.budget < 0:
            raise TooManyValues
        if value.isalnum() or value in self.clean:
            return None  # the detector's own fast path without the call, or seen clean
        kind = self.detector.find(value, skip)
        if kind is None and "%" in value and _ESCAPE.search(value) is not None:
            kind = self.detector.find(unquote(value), skip)
        if kind is None and not skip:
            self.clean.add(value)  # clean with nothing skipped: clean wherever it appears
        return kind

    def path(self, path: str) -> Finding | None:
        segments = [s for s in path.split("/") if s]
        for index, segment in enumerate(segments):
            number = str(index)
            kind = self.find(_decoded(segment, False), self.exempt.at("path", number))
            if kind is not None:
                return Finding(kind, "path", number)
        return None

    def pairs(self, text: str, where: Location) -> Finding | None:
        """A query string (``where="query"``) or a form body (``"body"``, pointers ``/NAME``)."""
        for part in text.split("&"):
            if not part:
                continue
            raw_name, _, raw_value = part.partition("=")
            name = _decoded(raw_name, True)
            found = self._pair(name, _decoded(raw_value, True), where)
            if found is not None:
                return found
        return None

    def _pair(self, name: str, value: str, where: Location) -> Finding | None:
        if where == "body":
            skip = self.exempt.in_body((name,))
            kind = self.find(name, skip)
            if kind is not None:
                return Finding(kind, "body", "", in_name=True)
            kind = self.find(value, skip)
            return None if kind is None else Finding(kind, "body", "/" + escape_token(name))
        skip = self.exempt.at(where, name)
        kind = self.find(name, skip)
        if kind is not None:
            return Finding(kind, where, "", in_name=True)
        kind = self.find(value, skip)
        return None if kind is None else Finding(kind, where, name)

    def headers(self, request: Request, names: Sequence[str]) -> Finding | None:
        for name in names:
            skip = self.exempt.at("header", name)
            for value in request.headers.get_all(name):
                kind = self.find(value, skip)
                if kind is not None:
                    return Finding(kind, "header", name)
        return None

    def body(self, body: bytes, content_type: str | None) -> Finding | None:
        media = _media_type(content_type)
        if media == "application/json" or (media.startswith("application/") and "+json" in media):
            try:
                document = parse_json(body)
            except (ValueError, RecursionError):
                # The upstream may parse what this parser refuses (deeper nesting, a lenient
                # grammar): every string literal in it, and the whole text, are inspected.
                return self.json_literals(body) or self.text(body)
            return self.json(document)
        if media == "application/x-www-form-urlencoded":
            return self.pairs(body.decode("latin-1"), "body")
        if media == "multipart/form-data":
            return self.multipart(body, content_type or "")
        if media in ("application/xml", "text/xml") or media.endswith("+xml"):
            return self.xml(body)
        return self.text(body)

    def xml(self, body: bytes) -> Finding | None:
        """Text nodes and attribute values of an XML body; location ``/a/b`` or ``/a/b/@c``."""
        try:
            values = list(xml_values(body))
        except UnsafeXML:
            return self.text(body)
        skip = self.exempt.in_body(())
        for location, value in values:
            kind = self.find(value, skip)
            if kind is not None:
                return Finding(kind, "body", location)
        return None

    def json_literals(self, body: bytes) -> Finding | None:
        """The string literals of a body that does not parse as JSON (location ``""``)."""
        text = body.decode("utf-8", "replace")
        skip = self.exempt.in_body(())
        for match in _STRING_LITERAL.finditer(text):
            try:
                value = json.loads(match.group())
            except ValueError:
                value = match.group()[1:-1]
            kind = self.find(value, skip)
            if kind is not None:
                return Finding(kind, "body", "")
        return None

    def text(self, body: bytes) -> Finding | None:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None  # binary: no text for a SQL, HTML or shell parser to run
        kind = self.find(text, self.exempt.in_body(()))
        return None if kind is None else Finding(kind, "body", "")

    def json(self, document: object) -> Finding | None:
        """Every string of ``document`` (member names too), walked without recursion.

        Without pointer exemptions the walk keeps no paths (the common case, and most of the
        guard's time on a JSON body); only when it finds something is the document walked again
        with paths, to say where.
        """
        if not self.exempt.body:
            budget = self.budget
            if not self._json_any(document, self.exempt.in_body(())):
                return None
            self.budget = budget
        return self._json_located(document)

    def _json_any(self, document: object, skip: frozenset[Kind]) -> bool:
        find = self.find
        if type(document) is str:
            return find(document, skip) is not None
        stack = [document]
        while stack:
            value = stack.pop()
            # One-word strings (most names and many values) are skipped here without a call;
            # the budget still counts them.
            if type(value) is Members:
                for key, item in value:
                    if key.isalnum():
                        self.budget -= 1
                    elif find(key, skip) is not None:
                        return True
                    kind = type(item)
                    if kind is str:
                        text = cast(str, item)
                        if text.isalnum():
                            self.budget -= 1
                        elif find(text, skip) is not None:
                            return True
                    elif kind is Members or kind is list:
                        stack.append(item)
            else:
                for item in cast(list[object], value):
                    kind = type(item)
                    if kind is str:
                        text = cast(str, item)
                        if text.isalnum():
                            self.budget -= 1
                        elif find(text, skip) is not None:
                            return True
                    elif kind is Members or kind is list:
                        stack.append(item)
            if self.budget < 0:
                raise TooManyValues
        return False

    def _json_located(self, document: object) -> Finding | None:
        exempt_body = bool(self.exempt.body)
        stack: list[tuple[object, tuple[str, ...]]] = [(document, ())]
        skip = self.exempt.in_body(())
        while stack:
            value, path = stack.pop()
            if exempt_body:
                skip = self.exempt.in_body(path)
            if isinstance(value, str):
                kind = self.find(value, skip)
                if kind is not None:
                    return Finding(kind, "body", _pointer(path))
            elif isinstance(value, Members):
                for key, item in value:
                    member = (*path, key)
                    if exempt_body:
                        skip = self.exempt.in_body(member)
                    kind = self.find(key, skip)
                    if kind is not None:
                        return Finding(kind, "body", _pointer(path), in_name=True)
                    if isinstance(item, str | list):
                        stack.append((item, member))
            elif isinstance(value, list):
                for index in range(len(value) - 1, -1, -1):
                    item = value[index]
                    if isinstance(item, str | list):
                        stack.append((item, (*path, str(index))))
        return None

    def multipart(self, body: bytes, content_type: str) -> Finding | None:
        """The text fields of a ``multipart/form-data`` body (files are not inspected)."""
        match = _BOUNDARY.search(content_type)
        if match is None:
            return self.text(body)
        delimiter = b"--" + (match.group(1) or match.group(2)).encode("latin-1")
        for part in body.split(delimiter)[1:]:
            if part.startswith(b"--"):
                break
            head, _, content = part.partition(b"\r\n\r\n")
            if b"filename=" in head.lower():
                continue
            name_match = _PART_NAME.search(head)
            name = name_match.group(1).decode("utf-8", "replace") if name_match else ""
            if content.endswith(b"\r\n"):
                content = content[:-2]
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError:
                continue
            found = self._pair(name, text, "body")
            if found is not None:
                return found
        return None


def _pointer(path: tuple[str, ...]) -> str:
    return "".join("/" + escape_token(token) for token in path)
