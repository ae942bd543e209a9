"""The strings of an XML body: text content and attribute values, with where they are.

An XML document inspected as one text would always look like markup to the XSS detector (its
``<?xml`` declaration, its tags), so XML bodies are parsed and their values inspected one by one,
as JSON bodies are. The parser is expat with everything that makes XML dangerous to parse
refused: a document that declares entities (billion laughs, external entities) or whose DTD
would be read is not parsed, and the guard then inspects it as text.
"""

from __future__ import annotations

from collections.abc import Iterator
from xml.parsers import expat


class UnsafeXML(Exception):
    """The document declares entities or is not well-formed: inspect it as text instead."""


def _refuse(*args: object) -> int:
    raise UnsafeXML


def xml_values(body: bytes) -> Iterator[tuple[str, str]]:
    """``(location, value)`` for each text node and attribute value, in document order.

    ``location`` is the element path (``/order/item``) or ``/order/item/@sku`` for an attribute.
    Raises :class:`UnsafeXML` when the document cannot be read safely.
    """
    found: list[tuple[str, str]] = []
    stack: list[str] = []
    text: list[str] = []

    def flush() -> None:
        if text:
            value = "".join(text).strip()
            text.clear()
            if value:
                found.append(("/" + "/".join(stack), value))

    def start(name: str, attributes: dict[str, str]) -> None:
        flush()
        stack.append(name)
        path = "/" + "/".join(stack)
        for attribute, value in attributes.items():
            found.append((f"{path}/@{attribute}", value))

    def end(name: str) -> None:
        flush()
        stack.pop()

    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise UnsafeXML from exc
    return iter(found)
