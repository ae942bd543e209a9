"""Config reload: re-read the file, validate it whole, then hand it to the runtime to apply.

A reload is refused, and the running config stays, when the file does not load (the error names
the field, the value unless secret, and what was expected), or when it changes a field that only
a restart can apply (listeners, workers, where state lives, TLS on the listener, the event sinks,
the engine's limits and timeouts): the refusal names each such field. Everything else (routes,
authentication, rate limits, validation, upstream TLS, ...) is applied atomically by the runtime:
new requests get the new chain, requests in flight finish under the one they started with.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.config.loader import load_config
from bastion.config.models import BastionConfig
from bastion.control.audit import Actor, AuditLog
from bastion.control.diff import config_diff
from bastion.errors import ConfigError, describe

RESTART_ONLY = (
    "listen",
    "workers",
    "state_dir",
    "admin.enabled",
    "admin.listen",
    "admin.audit_log",
    "admin.recent_events",
    "admin.session_ttl",
    "events",
    "tls",
    "timeouts",
    "limits",
    "pool",
    "proxy",
    "responses",
)


@dataclass(frozen=True)
class ConfigSource:
    """Where the running config came from: a file plus the command line's overrides (which a
    reload applies again, so that ``--listen`` keeps meaning what it meant at start)."""

    path: Path | None
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> BastionConfig:
        if self.path is None:
            raise ConfigError(
                "reload: the gateway was started without --config; expected a config file to"
                " re-read"
            )
        config = load_config(self.path, dict(self.overrides))
        # What `bastion serve` checks before serving, checked again before applying.
        from bastion.tls.upstream import check_upstream_tls
        from bastion.validation.document import load_document

        if config.openapi is not None:
            load_document(config.openapi)
        check_upstream_tls(config)
        return config


def _section(config: BastionConfig, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def restart_only_changes(old: BastionConfig, new: BastionConfig) -> list[str]:
    """The fields in ``RESTART_ONLY`` whose value differs."""
    return [name for name in RESTART_ONLY if _section(old, name) != _section(new, name)]


def check_reloadable(old: BastionConfig, new: BastionConfig) -> None:
    changed = restart_only_changes(old, new)
    if changed:
        raise ConfigError(
            "reload refused: the config is valid but changes what only a restart applies",
            [
                f"{name}: changed; expected it unchanged for a reload (restart instead)"
                for name in changed
            ],
        )
    if not new.routes:
        raise ConfigError(
            "reload refused", ["routes: none configured; expected at least one route"]
        )


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: ``ok``, the masked diff, the problems when refused."""

    ok: bool
    generation: int
    changes: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    message: str = ""

    def doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ok": self.ok,
            "generation": self.generation,
            "changes": self.changes,
        }
        if self.problems:
            doc["problems"] = self.problems
        if self.message:
            doc["message"] = self.message
        return doc


Applier = Callable[[BastionConfig], Awaitable[None]]
"""Applies a validated config (builds and swaps the chain); raises ConfigError to refuse."""


class Reloader:
    """Serialises reloads, keeps the current config, and writes each outcome to the audit log."""

    def __init__(
        self,
        config: BastionConfig,
        source: ConfigSource,
        apply: Applier,
        audit: AuditLog,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.source = source
        self.apply = apply
        self.audit = audit
        self.clock = clock
        self.generation = 0
        self.reloaded_at: float | None = None
        self._lock = asyncio.Lock()

    async def reload(self, actor: Actor, request_id: str = "") -> ReloadResult:
        async with self._lock:
            result = await self._reload()
        self.audit.record(
            actor,
            "config.reload",
            "success" if result.ok else "failure",
            details=result.doc(),
            request_id=request_id,
        )
        return result

    async def _reload(self) -> ReloadResult:
        try:
            new = await asyncio.to_thread(self.source.load)
            check_reloadable(self.config, new)
        except ConfigError as exc:
            return ReloadResult(
                False, self.generation, problems=_problems(exc), message=exc.message
            )
        changes = config_diff(self.config, new)
        if not changes:
            return ReloadResult(True, self.generation, message="no change")
        try:
            await self.apply(new)
        except ConfigError as exc:
            return ReloadResult(
                False, self.generation, changes, _problems(exc), message=exc.message
            )
        except Exception as exc:
            return ReloadResult(
                False, self.generation, changes, [describe(exc)], message="reload failed"
            )
        self.config = new
        self.generation += 1
        self.reloaded_at = self.clock()
        return ReloadResult(True, self.generation, changes, message="applied")


def _problems(error: ConfigError) -> list[str]:
    return list(error.problems) or [error.message]
