"""Regression: ``bastion db status`` opens the SQLite key store read-only whatever its path
holds. The path went into a ``file:`` URI unquoted, so a state directory named with ``?`` or
``#`` lost ``mode=ro`` and made SQLite open (and create, read-write) another file."""

from __future__ import annotations

from pathlib import Path

import orjson
import yaml
from click.testing import CliRunner

from bastion.cli.main import cli


def test_status_reads_the_store_at_a_path_with_uri_characters(tmp_path: Path) -> None:
    state = tmp_path / "state?mode=rwc#x%41"
    config = tmp_path / "b.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(state)}))
    upgraded = CliRunner().invoke(cli, ["db", "upgrade", "--config", str(config)])
    assert upgraded.exit_code == 0, upgraded.output
    before = sorted(p.name for p in tmp_path.iterdir())
    status = CliRunner().invoke(cli, ["db", "status", "--config", str(config), "--json"])
    assert status.exit_code == 0, status.output
    assert orjson.loads(status.output)["pending"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created beside it
