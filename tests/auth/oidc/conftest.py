"""A real OpenID Connect provider (npm ``oidc-provider`` on Node.js) for the OIDC tests.

``npm ci`` installs it into ``provider/node_modules`` the first time (from the committed lock
file; later runs reuse it). Each provider runs as ``node provider.mjs PORT`` on 127.0.0.1 and is
ready when its discovery document answers. See ``provider/provider.mjs`` for its clients,
resources and the test-only rotation route.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.ports import free_port

PROVIDER_DIR = Path(__file__).parent / "provider"
CLIENT_ID = "bastion-test"
CLIENT_SECRET = "bastion-test-secret"
RESOURCES = {
    "ES256": "https://api.bastion.test/es256",
    "EdDSA": "https://api.bastion.test/eddsa",
    "RS256": "https://api.bastion.test/rs256",
    "PS256": "https://api.bastion.test/ps256",
}


def install_provider() -> None:
    """``npm ci`` once per checkout (a lock file guards concurrent runs)."""
    marker = PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json"
    if marker.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("the OIDC tests need Node.js 20+ and npm on PATH")
    with open(Path(tempfile.gettempdir()) / "bastion-oidc-npm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"],
            cwd=PROVIDER_DIR,
            check=True,
            timeout=600,
        )


class Provider:
    """One running provider process; ``stop`` and ``start`` keep its port (and so its issuer)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.issuer = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None
        self.http = httpx.Client(base_url=self.issuer, timeout=10.0, trust_env=False)

    def start(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("the OIDC tests need Node.js 20+ on PATH")
        # the provider's output, shown if it never answers; closed with the Provider
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            [node, "provider.mjs", str(self.port)],
            cwd=PROVIDER_DIR,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NODE_ENV": "test"},
        )
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"oidc-provider exited with {self.process.returncode}")
            try:
                if self.http.get("/.well-known/openid-configuration").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # waiting for a process to listen, not for a time window
        self.stop()
        self.log.seek(0)
        output = self.log.read()[-2000:].decode(errors="replace")
        raise RuntimeError(f"oidc-provider did not answer discovery within 60 s: {output}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def token(self, alg: str = "ES256", scope: str = "read write") -> str:
        """A client-credentials access token (RFC 9068 JWT) for the resource signed with ``alg``."""
        response = self.http.post(
            "/token",
            data={"grant_type": "client_credentials", "resource": RESOURCES[alg], "scope": scope},
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    async def atoken(self, client: httpx.AsyncClient, alg: str = "ES256") -> str:
        response = await client.post(
            self.issuer + "/token",
            data={"grant_type": "client_credentials", "resource": RESOURCES[alg], "scope": "read"},
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def rotate(self) -> list[str]:
        """The provider signs with new keys from now on; the previous ones stay published."""
        response = self.http.post("/__test/rotate")
        response.raise_for_status()
        return list(response.json()["kids"])

    def stats(self) -> dict[str, Any]:
        return dict(self.http.get("/__test/stats").json())

    def close(self) -> None:
        self.stop()
        self.http.close()
        if self.log is not None:
            self.log.close()


@pytest.fixture(scope="session")
def provider_installed() -> None:
    install_provider()


@pytest.fixture(scope="module")
def provider(provider_installed: None) -> Iterator[Provider]:
    """A provider shared by a test module (tests that rotate its keys tolerate each other)."""
    running = Provider(free_port())
    running.start()
    yield running
    running.close()


@pytest.fixture
def own_provider(provider_installed: None) -> Iterator[Provider]:
    """A provider for one test alone (to stop, restart or rotate freely)."""
    running = Provider(free_port())
    running.start()
    yield running
    running.close()
