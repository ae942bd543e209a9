"""OpenAPI documents are read once at start; a broken one names the file, place and expectation."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.validation.document import load_document


def test_the_demo_document_loads() -> None:
    path = Path(str(resources.files("bastion.demo").joinpath("openapi.yaml")))
    document = load_document(path)
    assert document["openapi"] == "3.1.0"
    assert "/items/{id}" in document["paths"]


def test_json_documents_load(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text('{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {}}')
    assert load_document(path)["openapi"] == "3.0.3"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("openapi: 3.1.0\npaths: [a\n", r"openapi: .*spec.yaml: .* at line 3, column \d+"),
        ("swagger: '2.0'\n", r"has openapi '\(missing\)'; expected 3.0.x or 3.1.x"),
        ("openapi: 4.0.0\n", r"has openapi '4.0.0'; expected 3.0.x or 3.1.x"),
        ("openapi: 3.1.0\npaths: [1, 2]\n", r"paths is not a mapping"),
        ("- 1\n", r"top level is a list; expected a mapping"),
    ],
)
def test_broken_documents_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_document(path)


def test_missing_document(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"openapi: .*nope.yaml: no such file; expected an"):
        load_document(tmp_path / "nope.yaml")
