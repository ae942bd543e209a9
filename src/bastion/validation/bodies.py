"""Request bodies read the way their media type says, with limits checked before parsing.

JSON limits (nesting depth, members) are checked on the raw bytes first. The common case costs
two or three ``bytes.count`` calls in C: when the number of brackets cannot exceed the depth and
brackets plus commas (or half the length) cannot exceed the members, no parse can either.
(``bytes.find`` in a loop, or one ``bytes.translate``, measured no cheaper under callgrind.)
Only a body that might be past a limit is looked at closer (strings blanked out, brackets
walked), so a hostile body (``[[[[...`` a million deep, a million tiny members) is refused
before orjson builds anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")
_OPEN = frozenset(b"[{")


def media_type(content_type: str | None) -> str:
    """``type/subtype`` of a Content-Type, lower-case, parameters dropped ('' when absent)."""
    if not content_type:
        return ""
    return content_type.partition(";")[0].strip().lower()


M = TypeVar("M")


def select_media(exact: dict[str, M], wildcards: Sequence[tuple[str, M]], media: str) -> M | None:
    """The entry documented for ``media``: its exact type, else the first wildcard (``image/``
    for ``image/*``) it starts with. Requests' bodies and responses choose alike."""
    found = exact.get(media)
    if found is not None:
        return found
    for prefix, candidate in wildcards:
        if media.startswith(prefix):
            return candidate
    return None


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def json_limit(body: bytes, max_depth: int, max_members: int) -> str | None:
    """Which JSON limit ``body`` is past (``"depth"``, ``"members"``), or ``None``."""
    opens = body.count(b"{") + body.count(b"[")
    # a member takes at least two bytes with its separator, so a short body cannot have many
    if opens <= max_depth and (
        len(body) < 2 * max_members or opens + body.count(b",") <= max_members
    ):
        return None
    text = _STRINGS.sub(b'""', body)
    opens = text.count(b"{") + text.count(b"[")
    # every member but the first of a container follows a comma
    if opens + text.count(b",") > max_members:
        return "members"
    if opens <= max_depth:
        return None
    depth = 0
    for match in _BRACKETS.finditer(text):
        if match.group()[0] in _OPEN:
            depth += 1
            if depth > max_depth:
                return "depth"
        else:
            depth -= 1
    return None


def form_fields(body: bytes, max_fields: int) -> list[tuple[str, str]] | None:
    """The fields of an ``application/x-www-form-urlencoded`` body, or ``None`` if it is not."""
    try:
        return parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=max_fields,
        )
    except (UnicodeDecodeError, ValueError):
        return None


_DISPOSITION_PARAM = re.compile(r';\s*([a-zA-Z*]+)="((?:[^"\\]|\\.)*)"|;\s*([a-zA-Z*]+)=([^;\s]+)')


def _boundary(content_type: str) -> bytes | None:
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "boundary":
            value = value.strip().strip('"')
            if 0 < len(value) <= 70:
                return value.encode("latin-1")
    return None


def multipart_fields(
    body: bytes, content_type: str, max_parts: int
) -> list[tuple[str, Any]] | None:
    """The parts of a ``multipart/form-data`` body as (name, value): text parts decoded as
    UTF-8, file parts (with a ``filename``) as one character per byte, so length limits in the
    schema count bytes. ``None`` when the body is not well-formed multipart."""
    boundary = _boundary(content_type)
    if boundary is None:
        return None
    delimiter = b"--" + boundary
    if not body.startswith(delimiter):
        return None
    chunks = body.split(b"\r\n" + delimiter)
    first = chunks[0][len(delimiter) :]
    chunks[0] = first
    if len(chunks) - 1 > max_parts or not chunks[-1].startswith(b"--"):
        return None
    fields: list[tuple[str, Any]] = []
    for chunk in chunks[:-1]:
        if not chunk.startswith(b"\r\n"):
            return None
        head, sep, content = chunk[2:].partition(b"\r\n\r\n")
        if not sep:
            return None
        name: str | None = None
        filename: str | None = None
        for line in head.decode("latin-1").split("\r\n"):
            header, _, value = line.partition(":")
            if header.strip().lower() != "content-disposition":
                continue
            for quoted_key, quoted, bare_key, bare in _DISPOSITION_PARAM.findall(value):
                key = (quoted_key or bare_key).lower()
                if key == "name":
                    name = quoted or bare
                elif key == "filename":
                    filename = quoted or bare
        if name is None:
            return None
        if filename is not None:
            fields.append((name, content.decode("latin-1")))
            continue
        try:
            fields.append((name, content.decode("utf-8")))
        except UnicodeDecodeError:
            return None
    return fields
