"""The configuration reference documents every field the models accept."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from bastion.config.models import BastionConfig, RouteConfig
from bastion.config.validation import ValidationConfig

DOCS = Path(__file__).parent.parent / "docs"
# The reference page, plus the practice pages that document their own sections.
DOC = "\n".join(page.read_text() for page in sorted(DOCS.glob("*.md")))


def leaf_fields(model: type[BaseModel]) -> list[str]:
    names: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.extend(leaf_fields(annotation))
        else:
            names.append(field.alias or name)
    return names


def test_every_config_field_is_documented() -> None:
    missing = [
        name
        for name in leaf_fields(BastionConfig) + leaf_fields(RouteConfig)
        if f"`{name}`" not in DOC
    ]
    assert missing == []


def test_every_problem_code_is_documented() -> None:
    import re

    problems = (Path(__file__).parent.parent / "docs" / "problems.md").read_text()
    source = "\n".join(p.read_text() for p in (Path(__file__).parent.parent / "src").rglob("*.py"))
    codes = set(
        re.findall(r'"((?:request|upstream|route|guard|gateway|ratelimit|auth)\.[a-z_]+)"', source)
    )
    # validation.* strings are problem codes, or config fields (an audit finding names those)
    fields = {f"validation.{name}" for name in ValidationConfig.model_fields}
    codes |= set(re.findall(r'"(validation\.[a-z_]+)"', source)) - fields
    # event actions, never client-facing problems
    codes -= {"guard.failed", "ratelimit.lockout", "ratelimit.backend_unavailable",
              "ratelimit.backend_recovered", "auth.success", "auth.key_expiring",
              "auth.token_issued", "auth.token_refused",
              "validation.response_invalid", "validation.response_undocumented",
              "validation.response_stripped"}  # fmt: skip
    missing = sorted(code for code in codes if f"`{code}`" not in problems)
    assert missing == []
