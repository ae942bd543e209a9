"""The ``validation`` section: cross-field rules name the field; a missing document stops the
start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bastion.config.models import BastionConfig
from bastion.errors import ConfigError
from tests.validation.helpers import config_for, guard_for


def test_configuration_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(
        ValidationError, match=r"validation\.enabled is true but openapi is not set"
    ):
        BastionConfig.model_validate({"validation": {"enabled": True}})
    with pytest.raises(ValidationError, match=r"validation\.pass_through names unknown routes x"):
        BastionConfig.model_validate(
            {
                "openapi": "api.yaml",
                "routes": [{"name": "api", "upstream": "http://127.0.0.1:1"}],
                "validation": {"pass_through": ["x"]},
            }
        )
    with pytest.raises(ValidationError, match="status"):
        config_for(Path("api.yaml"), status=418)
    with pytest.raises(ConfigError, match="no such file"):
        guard_for(tmp_path / "missing.yaml")


def test_check_config_runs_the_whole_document_check(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bastion.cli.main import cli

    spec = tmp_path / "api.yaml"
    spec.write_text(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths: {}\n"
        "components:\n  schemas:\n    P: {$ref: 'https://example.com/p.yaml'}\n"
    )
    config = tmp_path / "bastion.yaml"
    config.write_text(f"openapi: {spec}\nvalidation: {{enabled: true}}\n")
    result = CliRunner().invoke(cli, ["check-config", str(config)])
    assert result.exit_code == 2
    assert "at /components/schemas/P: $ref 'https://example.com/p.yaml' is remote" in result.output
