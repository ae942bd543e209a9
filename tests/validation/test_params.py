"""Parameters decoded as OpenAPI serialises them (the examples of OpenAPI 3.1 §4.8.12.4.5),
then coerced by their schema's types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.validation.params import NOT_JSON, Param, scalar
from tests.validation.helpers import allowed, guard_for, pointers, request

ARRAY = {"type": "array", "items": {"type": "integer"}}
OBJECT = {"type": "object", "properties": {"R": {"type": "integer"}, "G": {"type": "string"}}}


def param(location: str, schema: Any, **spec: Any) -> Param:
    return Param.compile({"name": "color", "in": location, "schema": schema, **spec},
                         location, lambda node: node)  # fmt: skip


@pytest.mark.parametrize(
    ("location", "schema", "spec", "text", "value"),
    [
        ("path", ARRAY, {}, "3,4,5", [3, 4, 5]),
        ("path", OBJECT, {}, "R,100,G,x", {"R": 100, "G": "x"}),
        ("path", OBJECT, {"explode": True}, "R=100,G=x", {"R": 100, "G": "x"}),
        ("path", ARRAY, {"style": "label"}, ".3,4,5", [3, 4, 5]),
        ("path", ARRAY, {"style": "label", "explode": True}, ".3.4.5", [3, 4, 5]),
        ("path", {"type": "integer"}, {"style": "matrix"}, ";color=7", 7),
        ("path", ARRAY, {"style": "matrix"}, ";color=3,4", [3, 4]),
        ("path", ARRAY, {"style": "matrix", "explode": True}, ";color=3;color=4", [3, 4]),
        ("path", OBJECT, {"style": "matrix", "explode": True}, ";R=1;G=b", {"R": 1, "G": "b"}),
        ("query", ARRAY, {"explode": False}, "3,4", [3, 4]),
        ("query", ARRAY, {"style": "spaceDelimited", "explode": False}, "3 4", [3, 4]),
        ("query", ARRAY, {"style": "pipeDelimited", "explode": False}, "3|4", [3, 4]),
        ("query", OBJECT, {"explode": False}, "R,1,G,g", {"R": 1, "G": "g"}),
        ("header", ARRAY, {}, "3, 4 ,5", [3, 4, 5]),
        ("header", {"type": "boolean"}, {}, "true", True),
        ("cookie", {"type": "number"}, {}, "2.5", 2.5),
    ],
)
def test_styles_are_decoded(
    location: str, schema: Any, spec: dict[str, Any], text: str, value: Any
) -> None:
    assert param(location, schema, **spec).decode(text) == value


def test_values_that_cannot_be_coerced_stay_text() -> None:
    assert scalar("12a", "integer") == "12a"
    assert scalar("nan", "number") == "nan"
    assert scalar("1e999", "number") == "1e999"
    assert scalar("yes", "boolean") == "yes"
    assert scalar("9" * 50, "integer") == "9" * 50  # no huge integers from a query string
    assert param("path", ARRAY, style="label").decode("3,4") == "3,4"  # no leading '.'


def test_json_content_parameters() -> None:
    spec = {"name": "f", "in": "query", "content": {"application/json": {"schema": {}}}}
    compiled = Param.compile(spec, "query", lambda node: node)
    assert compiled.decode('{"a": [1]}') == {"a": [1]}
    assert compiled.decode("{nope") is NOT_JSON


def test_path_values_are_percent_decoded_after_splitting() -> None:
    strings = param("path", {"type": "array", "items": {"type": "string"}})
    assert strings.decode_path("a%2Cb,c") == ["a,b", "c"]
    assert param("path", {"type": "string"}).decode_path("caf%C3%A9") == "café"


SPEC = """
openapi: 3.0.3
info: {title: t, version: "1"}
servers:
  - url: "https://{region}.example.com/{version}"
    variables:
      region: {default: eu}
      version: {default: v2, enum: [v2, v3]}
  - url: /internal
paths:
  /colors:
    get:
      parameters:
        - {name: color, in: query, style: form, explode: true, schema: %s}
      responses: {"200": {description: ok}}
"""


def test_exploded_object_properties_are_query_parameters(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC % "{type: object, properties: {R: {type: integer}, G: {type: integer}}}")
    strict = guard_for(spec, strict=True)
    assert allowed(strict.check(request("GET", "/v2/colors?R=100&G=200")))
    assert pointers(strict.check(request("GET", "/v2/colors?R=1&G=x"))) == {
        "/query/color/G": "expected integer"
    }
    assert pointers(strict.check(request("GET", "/v2/colors?R=1&B=2"))) == {
        "/query/B": "is not a documented parameter"
    }


def test_every_server_base_path_serves_the_paths(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC % "{type: string}")
    guard = guard_for(spec)
    assert allowed(guard.check(request("GET", "/v2/colors")))
    assert allowed(guard.check(request("GET", "/internal/colors")))
    assert pointers(guard.check(request("GET", "/v3/colors"))) == {}
    assert guard.check(request("GET", "/v3/colors")).status == 404  # type: ignore[union-attr]
    assert guard.check(request("GET", "/colors")).status == 404  # type: ignore[union-attr]
