"""Line numbers for report locations: a JSON pointer into the OpenAPI document, or a config field
path (``routes[api].auth.require``), mapped to the line of the YAML or JSON file that holds it, so
code-scanning UIs can annotate the exact line."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import yaml

_FIELD = re.compile(r"([^.\[\]]+)|\[([^\]]+)\]")
Locator = Callable[[str], int]


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


def _line(root: yaml.Node | None, parts: list[str]) -> int:
    node, line = root, 1
    for part in parts:
        found = _child(node, part) if node is not None else None
        if found is None:
            break
        node, line = found
    return line


def pointer_parts(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]


def field_parts(path: str) -> list[str]:
    return [a or b for a, b in _FIELD.findall(path)]


def locator(path: Path, parse: Callable[[str], list[str]]) -> Locator:
    """Line of a location in the file at ``path`` (1 when the file or the place is not found)."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        root = None
    return lambda location: _line(root, parse(location)) if location else 1
