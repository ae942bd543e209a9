"""Loading for validation: refs across local files bundled, remote refs and ref cycles refused,
the document checked against the OpenAPI schema with the JSON pointer of each fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.validation.document import load_api
from bastion.validation.refs import FILES_KEY
from tests.validation.helpers import PETS_30, PETS_31, SPECS

MINIMAL = 'openapi: {version}\ninfo: {{title: t, version: "1"}}\npaths: {{}}\n'


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_both_versions_load() -> None:
    assert load_api(PETS_30).version == "3.0"
    api = load_api(PETS_31)
    assert api.version == "3.1"


def test_refs_across_files_are_bundled_into_one_document() -> None:
    api = load_api(PETS_31)
    names = [p.name for p in api.files]
    assert names == ["models.yaml", "owner.yaml"]
    body = api.document["paths"]["/pets"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["$ref"] == f"#/{FILES_KEY}/0/Pet"
    pet = api.document[FILES_KEY]["0"]["Pet"]
    assert pet["properties"]["parent"]["$ref"] == f"#/{FILES_KEY}/0/Pet"  # recursion kept
    assert pet["properties"]["owner"]["$ref"] == f"#/{FILES_KEY}/1"
    assert api.where(f"/{FILES_KEY}/0/Pet/properties") == "models.yaml#/Pet/properties"


def test_json_documents_load(tmp_path: Path) -> None:
    path = write(tmp_path, '{"openapi": "3.1.0", "info": {"title": "t", "version": "1"},'
                 ' "paths": {}}', "spec.json")  # fmt: skip
    assert load_api(path).version == "3.1"


@pytest.mark.parametrize(
    "ref", ["https://example.com/pet.yaml#/Pet", "http://x/y", "//host/pet.yaml", "file:///etc/x"]
)
def test_remote_refs_are_refused(tmp_path: Path, ref: str) -> None:
    text = MINIMAL.format(version="3.1.0") + f"components:\n  schemas:\n    P: {{$ref: '{ref}'}}\n"
    with pytest.raises(ConfigError, match=r"at /components/schemas/P: \$ref .* is remote"):
        load_api(write(tmp_path, text))


def test_a_ref_cycle_is_refused(tmp_path: Path) -> None:
    text = MINIMAL.format(version="3.1.0") + (
        "components:\n  schemas:\n    A: {$ref: '#/components/schemas/B'}\n"
        "    B: {$ref: '#/components/schemas/A'}\n"
    )
    with pytest.raises(ConfigError, match=r"\$ref cycle #/components/schemas/[AB] -> "):
        load_api(write(tmp_path, text))


def test_a_cycle_across_files_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "A: {$ref: 'b.yaml#/B'}\n", "a.yaml")
    write(tmp_path, "B: {$ref: 'a.yaml#/A'}\n", "b.yaml")
    text = MINIMAL.format(version="3.1.0") + "components:\n  schemas:\n    P: {$ref: 'a.yaml#/A'}\n"
    with pytest.raises(ConfigError, match=r"\$ref cycle"):
        load_api(write(tmp_path, text))


def test_a_ref_that_does_not_resolve_names_its_place(tmp_path: Path) -> None:
    text = MINIMAL.format(version="3.0.3") + "components:\n  schemas:\n    P: {$ref: '#/nope'}\n"
    with pytest.raises(ConfigError, match=r"at /components/schemas/P: \$ref '#/nope' does not"):
        load_api(write(tmp_path, text))


def test_a_missing_referenced_file_is_named(tmp_path: Path) -> None:
    text = MINIMAL.format(version="3.1.0") + "components:\n  schemas:\n    P: {$ref: 'gone.yaml'}\n"
    with pytest.raises(ConfigError, match=r"gone.yaml, which does not exist"):
        load_api(write(tmp_path, text))


def test_an_invalid_document_names_the_pointer(tmp_path: Path) -> None:
    text = MINIMAL.format(version="3.0.3").replace("paths: {}", "paths:\n  /x:\n    get: {}\n")
    with pytest.raises(ConfigError, match=r"at /paths/~1x/get: .*expected a valid OpenAPI 3.0"):
        load_api(write(tmp_path, text))


def test_an_invalid_31_document_names_the_pointer(tmp_path: Path) -> None:
    text = MINIMAL.format(version="3.1.0") + (
        "components:\n  parameters:\n    P: {name: p, in: nowhere, schema: {type: string}}\n"
    )
    with pytest.raises(ConfigError, match=r"at /components/parameters/P.*3.1 document"):
        load_api(write(tmp_path, text))


def test_an_error_inside_an_embedded_file_names_that_file(tmp_path: Path) -> None:
    write(tmp_path, "P: {name: p, in: nowhere, schema: {type: string}}\n", "params.yaml")
    text = MINIMAL.format(version="3.1.0") + (
        "components:\n  parameters:\n    P: {$ref: 'params.yaml#/P'}\n"
    )
    with pytest.raises(ConfigError, match=r"at params.yaml#/P"):
        load_api(write(tmp_path, text))


def test_swagger_2_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has openapi '\(missing\)'; expected 3.0.x or 3.1.x"):
        load_api(write(tmp_path, "swagger: '2.0'\n"))


def test_broken_yaml_names_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"at line 3, column \d+"):
        load_api(write(tmp_path, "openapi: 3.1.0\npaths: [a\n"))


def test_the_specs_directory_documents_are_all_valid() -> None:
    for path in SPECS.glob("petstore-*.yaml"):
        load_api(path)


def test_a_split_document_compiles_and_validates(tmp_path: Path) -> None:
    """Path items, request bodies and schemas in other files, each with refs relative to
    itself: the usual layout of a large API description."""
    from tests.validation.helpers import allowed, guard_for, json_request, pointers

    (tmp_path / "paths").mkdir()
    (tmp_path / "schemas").mkdir()
    write(tmp_path, "type: object\nrequired: [name]\nproperties:\n  name: {type: string}\n"
          "  tag: {$ref: 'tag.yaml'}\n", "schemas/pet.yaml")  # fmt: skip
    write(tmp_path, "type: string\nmaxLength: 3\n", "schemas/tag.yaml")
    write(tmp_path, "post:\n  requestBody: {$ref: '../spec.yaml#/components/requestBodies/Pet'}\n"
          "  responses: {'201': {description: ok}}\n", "paths/pets.yaml")  # fmt: skip
    spec = write(
        tmp_path,
        MINIMAL.format(version="3.0.3").replace(
            "paths: {}", "paths:\n  /pets: {$ref: 'paths/pets.yaml'}"
        )
        + "components:\n  requestBodies:\n    Pet:\n      required: true\n      content:\n"
        "        application/json: {schema: {$ref: 'schemas/pet.yaml'}}\n",
    )
    guard = guard_for(spec)
    assert pointers(guard.check(json_request("POST", "/pets", {"name": "a", "tag": "long"}))) == {
        "/body/tag": "must be at most 3 characters long"
    }
    assert allowed(guard.check(json_request("POST", "/pets", {"name": "a", "tag": "ok"})))


def test_a_schema_that_does_not_compile_names_its_place(tmp_path: Path) -> None:
    from bastion.validation.compiler import compile_api

    text = MINIMAL.format(version="3.1.0").replace("paths: {}", "") + (
        "paths:\n  /x:\n    post:\n      requestBody:\n        content:\n"
        "          application/json:\n            schema: {type: string, pattern: 'a(b'}\n"
        "      responses: {'200': {description: ok}}\n"
    )
    api = load_api(write(tmp_path, text))
    with pytest.raises(
        ConfigError,
        match=r"at /paths/~1x/post/requestBody/content/application~1json/schema/pattern: POST /x:"
        r" a schema does not compile \(.*regex.*\); expected valid JSON Schema",
    ):
        compile_api(api, strict=False)


def test_yaml_aliases_in_an_embedded_file_resolve(tmp_path: Path) -> None:
    """Aliases are expanded when the file is read, so each use is rewritten on its own."""
    from tests.validation.helpers import guard_for, json_request, pointers

    models = (
        "Tag: &tag {type: string, maxLength: 2}\nA: {properties: {t: {$ref: '#/Tag'}}}\n"
        "B: {properties: {t: {$ref: '#/Tag'}, u: *tag}}\nShared: &shared {$ref: '#/Tag'}\n"
        "C: {properties: {x: *shared, y: *shared}}\n"
    )
    write(tmp_path, models, "models.yaml")
    text = MINIMAL.format(version="3.1.0").replace("paths: {}", "") + (
        "paths:\n  /c:\n    post:\n      requestBody:\n        content:\n"
        "          application/json: {schema: {$ref: 'models.yaml#/C'}}\n"
        "      responses: {'200': {description: ok}}\n"
    )
    guard = guard_for(write(tmp_path, text))
    assert pointers(guard.check(json_request("POST", "/c", {"x": "abc", "y": "ok"}))) == {
        "/body/x": "must be at most 2 characters long"
    }
