"""``bastion db upgrade`` from three processes at once against one fresh schema: all succeed,
exactly one applies each migration, and a gateway then starts on the schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import psycopg
import yaml
from psycopg import sql

from bastion.store import migrate_postgres
from bastion.store.migrations import shipped


def test_three_concurrent_upgrades_apply_each_migration_once(
    tmp_path: Path, postgres_dsn: str, pg_schema: str
) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text(
        yaml.safe_dump(
            {"state_dir": str(tmp_path), "postgres": {"dsn": postgres_dsn, "schema": pg_schema}}
        )
    )
    command = [sys.executable, "-c", "from bastion.cli.main import main; main()", "db",
               "upgrade", "--config", str(config), "--json"]  # fmt: skip
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)
    ]
    outputs = []
    try:
        for run in runs:
            out, err = run.communicate(timeout=30)
            assert run.returncode == 0, err.decode()
            outputs.append(orjson.loads(out))
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    names = [str(m) for m in shipped("postgres")]
    applied = sorted((doc["applied_now"] for doc in outputs), key=len)
    assert applied == [[], [], names]  # one applied everything; the others waited, found none
    assert all(doc["current"] == len(names) for doc in outputs)
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute(
            sql.SQL("SELECT version FROM {}.schema_version ORDER BY version").format(
                sql.Identifier(pg_schema)
            )
        ).fetchall()
    assert [r[0] for r in rows] == list(range(1, len(names) + 1))
    assert migrate_postgres.status(postgres_dsn, pg_schema).pending == ()
