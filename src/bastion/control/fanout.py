"""How a supervisor hands a reload and receives recent events, to and from its workers.

The supervisor validates the new config, writes it to ``state_dir/run/reload.json`` (owner-only:
it may hold secrets, as the config on the workers' stdin does) with a generation number, and
sends SIGHUP; each worker applies it and answers in ``run/reload-<pid>.json``; the supervisor
deletes the config file once every worker has answered (or the wait is over). Workers also
publish their recent security events every second (``run/events-<pid>.json``) so that the admin
listener, which the supervisor serves, can answer queries over all of them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bastion.config.models import BastionConfig


def run_dir(config: BastionConfig) -> Path:
    return config.state_dir / "run"


def _write(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` (owner-only): readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def publish_reload(config: BastionConfig, generation: int, new: BastionConfig) -> None:
    payload = {"generation": generation, "config": json.loads(new.model_dump_json())}
    _write(run_dir(config) / "reload.json", json.dumps(payload).encode())


def pending_reload(config: BastionConfig, seen: int) -> tuple[int, BastionConfig] | None:
    """The reload a worker has not applied yet (generation above ``seen``), if any."""
    doc = _read(run_dir(config) / "reload.json")
    if doc is None or int(doc.get("generation", 0)) <= seen:
        return None
    return int(doc["generation"]), BastionConfig.model_validate(doc["config"])


def ack_path(config: BastionConfig, pid: int) -> Path:
    return run_dir(config) / f"reload-{pid}.json"


def acknowledge(config: BastionConfig, generation: int, error: str | None) -> None:
    doc = {"generation": generation, "ok": error is None, "error": error}
    _write(ack_path(config, os.getpid()), json.dumps(doc).encode())


def acknowledgement(config: BastionConfig, pid: int, generation: int) -> dict[str, Any] | None:
    doc = _read(ack_path(config, pid))
    if doc is None or doc.get("generation") != generation:
        return None
    return doc


def events_path(config: BastionConfig, pid: int) -> Path:
    return run_dir(config) / f"events-{pid}.json"


def publish_events(config: BastionConfig, exported: dict[str, Any]) -> None:
    _write(events_path(config, os.getpid()), json.dumps(exported, default=str).encode())


def worker_events(config: BastionConfig, pids: list[int]) -> list[dict[str, Any]]:
    found = []
    for pid in pids:
        doc = _read(events_path(config, pid))
        if doc is not None:
            found.append(doc)
    return found
