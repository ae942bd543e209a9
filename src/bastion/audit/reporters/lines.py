"""Line numbers for report locations: a JSON pointer into the OpenAPI document, or a config field
path (``routes[api].auth.require``), mapped to the line of the YAML or JSON file that holds it, so
code-scanning UIs can annotate the exact line.

A JSON file is scanned lexeme by lexeme for just the places asked for (GitHub's 13 MB description
takes about a second, where building a YAML node tree of it takes ten or more); a YAML file is
composed into nodes, which keep their marks. A place that is not found falls back to its nearest
ancestor that is, and to line 1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

_FIELD = re.compile(r"([^.\[\]]+)|\[([^\]]+)\]")
_LEXEME = re.compile(r'"(?:[^"\\\n]|\\.)*"|[{}\[\],:\n]|[^\s{}\[\],:"]+')
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Locator = Callable[[str], int]


def escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def pointer_parts(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]


def field_parts(path: str) -> list[str]:
    return [a or b for a, b in _FIELD.findall(path)]


def _prefixes(parts: list[str]) -> list[str]:
    return ["".join("/" + escape(p) for p in parts[:n]) for n in range(len(parts), 0, -1)]


def json_lines(text: str, wanted: frozenset[str]) -> dict[str, int]:
    """The line of each wanted JSON pointer in the JSON ``text`` (a member: its key's line; an
    array item: the line where it starts)."""
    found: dict[str, int] = {}
    line = 1
    containers: list[tuple[bool, str]] = []  # (is an array, the container's pointer)
    indexes: list[int] = []
    upcoming = ""  # the pointer of the value that starts with the next lexeme
    expect_key = False
    for match in _LEXEME.finditer(text):
        lexeme = match.group()
        if lexeme == "\n":
            line += 1
        elif lexeme == ":":
            continue
        elif lexeme == ",":
            if containers and containers[-1][0]:
                indexes[-1] += 1
                upcoming = f"{containers[-1][1]}/{indexes[-1]}"
            else:
                expect_key = True
        elif lexeme in ("}", "]"):
            if containers:
                containers.pop()
                indexes.pop()
            expect_key = False
        elif expect_key:
            key = json.loads(lexeme) if lexeme.startswith('"') else lexeme
            upcoming = f"{containers[-1][1]}/{escape(str(key))}"
            if upcoming in wanted:
                found.setdefault(upcoming, line)
            expect_key = False
        else:
            if upcoming in wanted:
                found.setdefault(upcoming, line)
            if lexeme == "{":
                containers.append((False, upcoming))
                indexes.append(-1)
                expect_key = True
            elif lexeme == "[":
                containers.append((True, upcoming))
                indexes.append(0)
                upcoming = f"{upcoming}/0"
    return found


def _child(node: yaml.Node, part: str) -> tuple[yaml.Node, int] | None:
    """The child named ``part`` and the line that names it (a key's line, an item's line)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                return value, int(key.start_mark.line) + 1
        return None
    if isinstance(node, yaml.SequenceNode):
        items: list[yaml.Node] = list(node.value)
        if part.isdigit() and int(part) < len(items):
            return items[int(part)], int(items[int(part)].start_mark.line) + 1
        for item in items:  # routes[api]: the item whose name is api
            name = _child(item, "name")
            if name is not None and isinstance(name[0], yaml.ScalarNode) and name[0].value == part:
                return item, int(item.start_mark.line) + 1
    return None


def _yaml_line(root: yaml.Node | None, parts: list[str]) -> int:
    node, line = root, 1
    for part in parts:
        found = _child(node, part) if node is not None else None
        if found is None:
            break
        node, line = found
    return line


def locator(path: Path, parse: Callable[[str], list[str]], places: Iterable[str] = ()) -> Locator:
    """Line of a location in the file at ``path`` (1 when the file or the place is not found).
    ``places`` lists the locations that will be asked for (a JSON file is scanned for them)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return lambda location: 1
    if text.lstrip().startswith("{"):
        parsed = {place: parse(place) for place in places if place}
        wanted = frozenset(p for parts in parsed.values() for p in _prefixes(parts))
        lines = json_lines(text, wanted)

        def in_json(location: str) -> int:
            parts = parsed.get(location) or parse(location)
            return next((lines[p] for p in _prefixes(parts) if p in lines), 1)

        return in_json
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError:
        root = None
    return lambda location: _yaml_line(root, parse(location)) if location else 1
