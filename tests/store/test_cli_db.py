"""``bastion db status`` and ``bastion db upgrade`` through the real CLI, on PostgreSQL and on
SQLite: exit codes, text and JSON, and what a gateway's store says before and after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner, Result

from bastion.cli.main import cli
from bastion.config.loader import load_config
from bastion.store import open_key_store
from bastion.store.migrations import shipped
from bastion.store.schema import SchemaBehind


def write(path: Path, **sections: Any) -> Path:
    path.write_text(yaml.safe_dump({"state_dir": str(path.parent / "state"), **sections}))
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_postgres_status_upgrade_status(tmp_path: Path, postgres_dsn: str, pg_schema: str) -> None:
    config = write(tmp_path / "b.yaml", postgres={"dsn": postgres_dsn, "schema": pg_schema})
    latest = len(shipped("postgres"))

    before = run("db", "status", "--config", str(config))
    assert before.exit_code == 1, before.output  # pending migrations
    assert f"version 0 of {latest}" in before.output
    assert "0001_initial  pending" in before.output
    with pytest.raises(SchemaBehind):
        open_key_store(load_config(config), create=False)  # a gateway's store

    upgraded = run("db", "upgrade", "--config", str(config), "--json")
    assert upgraded.exit_code == 0, upgraded.output
    doc = orjson.loads(upgraded.output)
    assert doc["applied_now"][0] == "0001_initial"
    assert doc["current"] == latest
    assert doc["pending"] == []
    assert doc["where"] == f"PostgreSQL schema {pg_schema!r}"
    assert postgres_dsn not in upgraded.output

    again = run("db", "upgrade", "--config", str(config))
    assert again.exit_code == 0
    assert "nothing to apply" in again.output
    after = run("db", "status", "--config", str(config))
    assert after.exit_code == 0
    assert "(up to date)" in after.output
    open_key_store(load_config(config), create=False).close()


def test_sqlite_status_reads_without_creating_then_upgrade_creates(tmp_path: Path) -> None:
    config = write(tmp_path / "b.yaml")
    status = run("db", "status", "--config", str(config), "--json")
    assert status.exit_code == 1
    assert orjson.loads(status.output)["pending"] == ["0001_initial", "0002_security_events"]
    assert not (tmp_path / "state" / "keys.db").exists()
    upgraded = run("db", "upgrade", "--config", str(config))
    assert upgraded.exit_code == 0
    assert "applied 0001_initial, 0002_security_events" in upgraded.output
    db_file = tmp_path / "state" / "keys.db"
    assert db_file.stat().st_mode & 0o077 == 0  # owner-only, as the key store makes it
    assert run("db", "status", "--config", str(config)).exit_code == 0


def test_an_unreachable_database_is_exit_1_without_the_password(tmp_path: Path) -> None:
    from tests.ports import free_port

    dsn = f"postgresql://bastion:hunter2@127.0.0.1:{free_port()}/x?connect_timeout=1"
    config = write(tmp_path / "b.yaml", postgres={"dsn": dsn})
    result = run("db", "upgrade", "--config", str(config))
    assert result.exit_code == 1
    assert "unavailable" in result.output
    assert "hunter2" not in result.output


def test_a_bad_config_is_exit_2(tmp_path: Path) -> None:
    config = write(tmp_path / "b.yaml", postgres={"dsn": "mysql://x"})
    assert run("db", "upgrade", "--config", str(config)).exit_code == 2
    assert run("db", "status").exit_code == 2  # --config is required
