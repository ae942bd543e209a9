"""Regression: the Kubernetes Secret shipped in deploy/ holds placeholders; applied unchanged,
bastion must refuse to start rather than hash every API key under a pepper published in this
repository (the old placeholder was long enough to be accepted as a pepper)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bastion.auth.keys.hashing import PEPPER_ENV, load_pepper
from bastion.errors import StateError

SECRET = Path(__file__).parents[2] / "deploy" / "k8s" / "secret.yaml"


def test_the_shipped_pepper_placeholder_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    placeholder = yaml.safe_load(SECRET.read_text())["stringData"][PEPPER_ENV]
    monkeypatch.setenv(PEPPER_ENV, placeholder)
    with pytest.raises(StateError, match="expected at least 32"):
        load_pepper(tmp_path / "pepper", create=True)
    assert not (tmp_path / "pepper").exists()
