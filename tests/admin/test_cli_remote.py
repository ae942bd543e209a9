"""``bastion keys ... --remote`` and ``bastion admin ...`` against a gateway's admin API, as a
user runs them (real processes), and ``bastion admin token create``."""

from __future__ import annotations

import asyncio
import os
import stat
import textwrap
from pathlib import Path

import httpx
import orjson
import yaml
from click.testing import CliRunner

from bastion.admin.tokens import token_hash
from bastion.cli.main import cli
from bastion.config.models import BastionConfig
from tests.admin.helpers import config_doc, running, tokens
from tests.admin.processes import BASTION
from tests.engine.upstream_app import Upstream


async def bastion(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        BASTION,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_keys_through_the_admin_api(upstream: Upstream, tmp_path: Path) -> None:
    secrets = tokens()
    config = BastionConfig.model_validate(config_doc(tmp_path, upstream.url, secrets))
    ops_file, viewer_file = tmp_path / "ops.token", tmp_path / "viewer.token"
    ops_file.write_text(secrets["ops"] + "\n")
    viewer_file.write_text(secrets["viewer"])
    ops_file.chmod(0o600)
    viewer_file.chmod(0o600)
    async with running(config) as gw, httpx.AsyncClient(base_url=gw.base) as api:
        remote = ("--remote", gw.admin_url, "--admin-token-file")
        code, out, err = await bastion(
            "keys", "create", "--consumer", "acme", "--scope", "orders:read", "--json",
            *remote, str(ops_file),
        )  # fmt: skip
        assert code == 0, err
        created = orjson.loads(out)
        assert created["consumer"] == "acme"
        for _ in range(60):
            if (await api.get("/x", headers={"x-api-key": created["secret"]})).status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert (await api.get("/x", headers={"x-api-key": created["secret"]})).status_code == 200

        code, out, err = await bastion("keys", "list", *remote, str(viewer_file))
        assert code == 0, err
        assert created["id"] in out
        assert created["secret"] not in out

        code, out, err = await bastion("keys", "revoke", created["id"], *remote, str(viewer_file))
        assert code == 1
        assert "admin.forbidden" in err

        code, out, err = await bastion("keys", "rotate", created["id"], *remote, str(ops_file))
        assert code == 0, err
        assert "Rotated: new API key" in out
        assert f"The old key {created['id']} works until" in out

        # Without a config file to re-read, this in-process gateway refuses to reload.
        code, _, err = await bastion("admin", "reload", *remote, str(ops_file))
        assert code == 2
        assert "admin.reload_refused" in err


def test_admin_token_create_prints_the_config_entry(tmp_path: Path) -> None:
    target = tmp_path / "deployer.token"
    args = ["admin", "token", "create", "--name", "deployer", "--role", "operator"]
    result = CliRunner().invoke(cli, [*args, "--output", str(target)])
    assert result.exit_code == 0, result.output
    token = target.read_text().strip()
    assert token.startswith("bsa_")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert token not in result.output
    entry = yaml.safe_load(textwrap.dedent(result.output[result.output.index("  - name:") :]))
    assert entry == [{"name": "deployer", "role": "operator", "token_hash": token_hash(token)}]
    again = CliRunner().invoke(cli, [*args, "--output", str(target)])
    assert again.exit_code == 2
    assert target.read_text().strip() == token  # never overwritten
    result = CliRunner().invoke(cli, ["keys", "list", "--remote", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "--admin-token-file" in result.output
