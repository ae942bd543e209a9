"""``$ref`` across local files: one self-contained document, refused cleanly when it cannot be.

Every file a ``$ref`` names (``models.yaml#/Pet``, relative to the file that holds the ref) is
read once and embedded under ``x-bastion-files/<n>`` of the root document, and each ref is
rewritten to a local one (``#/x-bastion-files/0/Pet``). The result has exactly one JSON resource,
so the compiled validators share one registry and error pointers stay meaningful.

Remote refs (``https://...``, any URI scheme) are refused: fetching code-defining documents from
the network at start would make the allowlist depend on someone else's server. A chain of refs
that only points at itself (``A: {$ref: B}``, ``B: {$ref: A}``) is refused as a cycle; recursive
*schemas* (a tree node whose children are nodes) are legitimate and stay refs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from bastion.errors import ConfigError

FILES_KEY = "x-bastion-files"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")

Reader = Callable[[Path], Any]


def escape(token: str) -> str:
    """One JSON-pointer reference token (RFC 6901 §3)."""
    return token.replace("~", "~0").replace("/", "~1")


def unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def pointer_tokens(pointer: str) -> list[str]:
    """The tokens of a pointer (``/a/b``); a fragment's percent-encoding is undone first."""
    pointer = unquote(pointer)
    if not pointer:
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"{pointer!r} is not a JSON pointer")
    return [unescape(token) for token in pointer[1:].split("/")]


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value at ``pointer`` (``/a/0/b``), or ``KeyError`` naming what is missing."""
    node = document
    for token in pointer_tokens(pointer):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError(token)
    return node


class Bundler:
    """Embeds the files a document's refs name (see the module docstring)."""

    def __init__(self, root: Path, document: dict[str, Any], read: Reader, label: str) -> None:
        self.root = root.resolve()
        self.read = read
        self.label = label
        self.document = document
        self.files: dict[Path, int] = {}
        self.embedded: list[Any] = []
        # every object holding a $ref, with where it is (for check_refs, without a second walk)
        self.refs: list[tuple[str, dict[str, Any]]] = []

    def bundle(self) -> dict[str, Any]:
        self._rewrite(self.document, self.root, "", "")
        if self.embedded:
            self.document[FILES_KEY] = {str(i): doc for i, doc in enumerate(self.embedded)}
        return self.document

    def _file_index(self, path: Path) -> int:
        index = self.files.get(path)
        if index is not None:
            return index
        index = len(self.embedded)
        self.files[path] = index
        self.embedded.append(None)
        content = self.read(path)
        self.embedded[index] = content
        self._rewrite(content, path, f"/{FILES_KEY}/{index}", f"{path.name}#")
        return index

    def _rewrite(self, node: Any, file: Path, base: str, where: str) -> None:
        stack: list[tuple[Any, str]] = [(node, "")]
        while stack:
            current, pointer = stack.pop()
            if isinstance(current, dict):
                ref = current.get("$ref")
                if isinstance(ref, str):
                    current["$ref"] = self._local(ref, file, base, f"{where}{pointer}")
                    self.refs.append((f"{where}{pointer}", current))
                for key, value in current.items():
                    if isinstance(value, dict | list):
                        stack.append((value, f"{pointer}/{escape(str(key))}"))
            elif isinstance(current, list):
                for i, value in enumerate(current):
                    if isinstance(value, dict | list):
                        stack.append((value, f"{pointer}/{i}"))

    def _local(self, ref: str, file: Path, base: str, where: str) -> str:
        target, _, fragment = ref.partition("#")
        if _SCHEME.match(target) or target.startswith("//"):
            raise ConfigError(
                f"{self.label}: at {where or '/'}: $ref {ref!r} is remote;"
                " expected a local file or a '#/...' pointer (bastion never fetches documents)"
            )
        if not target:
            return f"#{base}{fragment}"
        path = (file.parent / unquote(target)).resolve()
        if path == self.root:
            return f"#{fragment}"
        if not path.is_file():
            raise ConfigError(
                f"{self.label}: at {where or '/'}: $ref {ref!r} names {path}, which does not"
                " exist; expected a file next to the document"
            )
        index = self._file_index(path)
        return f"#/{FILES_KEY}/{index}{fragment}"


def check_refs(
    document: dict[str, Any], label: str, found: list[tuple[str, dict[str, Any]]] | None = None
) -> None:
    """Every ``$ref`` resolves, and none is part of a chain of refs that returns to itself.
    ``found`` lists the objects holding refs (as :class:`Bundler` collects them); without it
    the document is walked to find them."""
    if found is not None:
        for where, node in found:
            follow(document, node, label, where)
        return
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        current, pointer = stack.pop()
        if isinstance(current, dict):
            if isinstance(current.get("$ref"), str):
                follow(document, current, label, pointer)
            for key, value in current.items():
                if isinstance(value, dict | list):
                    stack.append((value, f"{pointer}/{escape(str(key))}"))
        elif isinstance(current, list):
            for i, value in enumerate(current):
                if isinstance(value, dict | list):
                    stack.append((value, f"{pointer}/{i}"))


def follow(document: dict[str, Any], node: Any, label: str, where: str) -> Any:
    """``node`` with its chain of refs followed to the object they name."""
    seen: list[str] = []
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if ref in seen:
            chain = " -> ".join([*seen, ref])
            raise ConfigError(
                f"{label}: at {where or '/'}: $ref cycle {chain}; expected a ref"
                " chain that ends at an object"
            )
        seen.append(ref)
        if not ref.startswith("#"):
            raise ConfigError(f"{label}: at {where or '/'}: $ref {ref!r} is not local")
        try:
            node = resolve_pointer(document, ref[1:])
        except (KeyError, ValueError):
            raise ConfigError(
                f"{label}: at {where or '/'}: $ref {ref!r} does not resolve;"
                " expected a pointer to an existing part of the document"
            ) from None
    return node
