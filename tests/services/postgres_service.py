"""PostgreSQL for the tests: the shared server at 127.0.0.1:5432, or one started for the run.

- ``postgres_dsn`` (session): ``postgresql://postgres@127.0.0.1:5432/test`` when it answers,
  otherwise a temporary cluster (``initdb`` + ``pg_ctl``, trust authentication, loopback only, on
  a free port) started for the session and stopped at the end. Tests never skip: without the
  PostgreSQL server binaries they fail, saying so.
- ``pg_schema``: a schema name of its own for each test; the schema is dropped afterwards.
- ``postgres_cluster_factory``: private clusters, for tests that stop or break a server; every
  one is stopped at the end of the test.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.ports import free_port

SHARED_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def answers(dsn: str, timeout: int = 2) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=timeout) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def server_binaries() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl`` (the newest installed version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).parent
    pytest.fail(
        "no PostgreSQL answers at 127.0.0.1:5432 and initdb is not installed: the PostgreSQL "
        "tests need one of them (apt-get install postgresql)",
        pytrace=False,
    )


def _run_as(directory: Path) -> list[str]:
    """The command prefix to run server binaries: PostgreSQL refuses to run as root, so then the
    ``postgres`` user runs them, owning ``directory`` and able to reach it."""
    if os.geteuid() != 0:
        return []
    import pwd

    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root needs a 'postgres' user to start a cluster", pytrace=False)
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    top = Path(tempfile.gettempdir())
    parent = directory.parent
    while parent != top and top in parent.parents:
        os.chmod(parent, os.stat(parent).st_mode | 0o011)  # noqa: S103  (traversable only)
        parent = parent.parent
    return ["runuser", "-u", "postgres", "--"]


class PostgresCluster:
    """A private cluster in ``directory``: trust auth, 127.0.0.1 only, a free port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = 0
        self._bin = server_binaries()
        self._prefix: list[str] = []

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> PostgresCluster:
        if not self.data.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            self._prefix = _run_as(self.directory)
            subprocess.run(
                [*self._prefix, str(self._bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                 "--auth=trust", "--no-sync"],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
        self.port = self.port or free_port()
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -F"
        subprocess.run(
            [*self._prefix, str(self._bin / "pg_ctl"), "-D", str(self.data), "-o", options,
             "-l", str(self.directory / "server.log"), "-w", "-t", "60", "start"],
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip
        return self

    def stop(self) -> None:
        if not self.data.exists():
            return
        subprocess.run(
            [*self._prefix, str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
             "stop"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The PostgreSQL every test may share, each in its own schema."""
    if answers(SHARED_DSN):
        yield SHARED_DSN
        return
    cluster = PostgresCluster(tmp_path_factory.mktemp("postgres")).start()
    try:
        yield cluster.dsn
    finally:
        cluster.stop()


@pytest.fixture
def pg_schema(postgres_dsn: str) -> Iterator[str]:
    """A schema name no other test uses (created by whoever uses it); dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield schema
    with psycopg.connect(postgres_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def postgres_cluster_factory(tmp_path: Path) -> Iterator[Callable[[], PostgresCluster]]:
    """``factory()`` starts a private cluster; all are stopped at the end of the test."""
    clusters: list[PostgresCluster] = []

    def factory() -> PostgresCluster:
        cluster = PostgresCluster(tmp_path / f"pg-{len(clusters)}")
        clusters.append(cluster)
        return cluster.start()

    yield factory
    for cluster in clusters:
        cluster.stop()
