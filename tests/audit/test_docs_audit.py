"""docs/audit.md documents every registered check, and every check is complete enough to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bastion.audit.checks import default_registry
from bastion.audit.model import CheckInfo

DOC = (Path(__file__).parents[2] / "docs" / "audit.md").read_text()
INFOS = default_registry().infos()
_ID = re.compile(r"^(static|live|attest)\.[a-z0-9-]+$")


@pytest.mark.parametrize("check_id", sorted(i.id for i in INFOS))
def test_every_registered_check_is_documented(check_id: str) -> None:
    assert f"`{check_id}`" in DOC


@pytest.mark.parametrize("info", INFOS, ids=lambda i: i.id)
def test_every_check_has_an_id_criterion_rationale_and_references(info: CheckInfo) -> None:
    assert _ID.match(info.id)
    assert info.title
    assert info.criterion
    assert info.rationale
    assert info.references


def test_the_documented_options_are_the_commands_options() -> None:
    from bastion.cli.audit import audit

    for param in audit.params:
        for opt in param.opts:
            if opt.startswith("--"):
                assert f"`{opt}" in DOC, opt
