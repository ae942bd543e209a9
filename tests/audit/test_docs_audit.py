"""docs/audit.md documents every registered check, and every check is complete enough to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bastion.audit.checks import default_registry
from bastion.audit.docgen import BEGIN, END, main, rewrite
from bastion.audit.model import CheckInfo

DOC = (Path(__file__).parents[2] / "docs" / "audit.md").read_text()
INFOS = default_registry().infos()
_ID = re.compile(r"^(static|live|attest)\.[a-z0-9-]+$")


@pytest.mark.parametrize("check_id", sorted(i.id for i in INFOS))
def test_every_registered_check_is_documented(check_id: str) -> None:
    assert f"`{check_id}`" in DOC


def test_the_check_reference_is_generated_from_the_registry() -> None:
    assert rewrite(DOC, default_registry()) == DOC, (
        "docs/audit.md is out of date: run python -m bastion.audit.docgen docs/audit.md"
    )


def test_the_generator_rewrites_only_its_section(tmp_path: Path) -> None:
    page = tmp_path / "audit.md"
    page.write_text(f"# Title\n\n{BEGIN}\nstale\n{END}\n\n## After\n")
    assert main([str(page)]) == 0
    text = page.read_text()
    assert text.startswith("# Title\n\n")
    assert text.endswith(f"{END}\n\n## After\n")
    assert "stale" not in text
    assert "`static.security-on-writes`" in text


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


def test_live_and_intrusive_checks_get_their_own_sections() -> None:
    from bastion.audit.docgen import reference
    from bastion.audit.model import Kind, Practice, Registry, Severity

    async def probe(context: object) -> list[object]:
        return []

    registry = Registry()
    for kind, check_id in ((Kind.LIVE, "live.a"), (Kind.AGGRESSIVE, "live.b")):
        info = CheckInfo(
            check_id, "t", Practice.RATE_LIMITING, Severity.LOW, kind, "c", "r", ("x",)
        )
        registry.add_live(info, probe)  # type: ignore[arg-type]
    text = reference(registry)
    assert text.index("### Live checks (safe)") < text.index("`live.a`")
    assert text.index("### Intrusive checks (`--aggressive`)") < text.index("`live.b`")
    assert "#### Rate limiting" in text
