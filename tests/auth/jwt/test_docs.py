"""docs/tokens.md documents every token setting and every refusal code."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from bastion.auth.jwt import errors
from bastion.auth.jwt.settings import (
    IssuerSettings,
    SigningSettings,
    TokenCacheSettings,
    TokenEndpointSettings,
    TokenLimitSettings,
    TokenSettings,
)

DOC = (Path(__file__).parents[3] / "docs" / "tokens.md").read_text()


def test_every_token_setting_is_documented() -> None:
    models: list[type[BaseModel]] = [
        TokenSettings,
        IssuerSettings,
        SigningSettings,
        TokenEndpointSettings,
        TokenCacheSettings,
        TokenLimitSettings,
    ]
    missing = [
        f"{model.__name__}.{name}"
        for model in models
        for name, field in model.model_fields.items()
        if f"`{field.alias or name}`" not in DOC
    ]
    assert missing == []


def test_every_token_error_code_is_documented() -> None:
    codes = [value for name, value in vars(errors).items() if name.isupper() and "." in value]
    assert len(codes) == 5
    assert [code for code in codes if f"`{code}`" not in DOC] == []


def test_every_advisory_test_named_in_the_docs_exists() -> None:
    import re

    advisories = Path(__file__).parents[2] / "advisories"
    files = [*advisories.glob("test_rfc8725_*.py"), *Path(__file__).parent.glob("test_*.py")]
    source = "\n".join(p.read_text() for p in files)
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", DOC))
    assert named
    assert sorted(name for name in named if f"def {name}(" not in source) == []
