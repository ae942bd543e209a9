"""Report locations mapped to file lines, in JSON (scanned) and YAML (composed) documents."""

from __future__ import annotations

import json
from pathlib import Path

from bastion.audit.checks import default_registry
from bastion.audit.report import build_report
from bastion.audit.reporters import sarif
from bastion.audit.reporters.lines import json_lines, locator, pointer_parts

from .helpers import DATA, document

TEXT = """{
  "paths": {
    "/a~b/{id}": {
      "get": {"parameters": [
        {"name": "x"},
        {"name": "y", "schema": {"enum": ["a,b", "c:d", "}"]}}
      ]}
    }
  },
  "servers": [],
  "empty": {}, "after": [1, [2, 3], {"k": 4}]
}"""


def test_json_lines_finds_members_and_items() -> None:
    wanted = frozenset(
        {
            "/paths/~1a~0b~1{id}/get",
            "/paths/~1a~0b~1{id}/get/parameters/1",
            "/paths/~1a~0b~1{id}/get/parameters/1/schema",
            "/servers",
            "/after/2/k",
            "/after/1/1",
            "/missing",
        }
    )
    assert json_lines(TEXT, wanted) == {
        "/paths/~1a~0b~1{id}/get": 4,
        "/paths/~1a~0b~1{id}/get/parameters/1": 6,
        "/paths/~1a~0b~1{id}/get/parameters/1/schema": 6,
        "/servers": 10,
        "/after/1/1": 11,
        "/after/2/k": 11,
    }


def test_an_unknown_place_falls_back_to_its_nearest_known_ancestor(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text(TEXT)
    where = locator(path, pointer_parts, ["/paths/~1a~0b~1{id}/get/nope/deeper"])
    assert where("/paths/~1a~0b~1{id}/get/nope/deeper") == 4
    assert where("/nothing/here") == 1


def test_sarif_lines_are_the_same_for_the_document_as_json_and_as_yaml(tmp_path: Path) -> None:
    doc = document("weak.yaml")
    as_json = tmp_path / "weak.json"
    as_json.write_text(json.dumps(doc, indent=2))
    findings = [f for e in default_registry() if e.static for f in e.static(doc)]
    lines = as_json.read_text().splitlines()
    results = sarif.sarif_dict(build_report("t", findings, openapi=str(as_json)))["runs"][0][
        "results"
    ]
    assert results
    for result in results:
        pointer = result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
        last = pointer_parts(pointer)[-1]
        line = result["locations"][0]["physicalLocation"]["region"]["startLine"]
        if not last.isdigit():
            assert f'"{last}":' in lines[line - 1], (pointer, lines[line - 1])
    yaml_results = sarif.sarif_dict(build_report("t", findings, openapi=str(DATA / "weak.yaml")))
    yaml_lines = (DATA / "weak.yaml").read_text().splitlines()
    for result in yaml_results["runs"][0]["results"]:
        pointer = result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
        last = pointer_parts(pointer)[-1]
        line = result["locations"][0]["physicalLocation"]["region"]["startLine"]
        if not last.isdigit():  # keys may be quoted in YAML ("401":)
            assert last in yaml_lines[line - 1], (pointer, yaml_lines[line - 1])
