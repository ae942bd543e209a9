"""What ``/readyz`` means beyond "started and not shutting down".

An instance is ready when it can answer requests as well as any instance of the fleet could. A
guard that cannot decide at all (the API key guard before its first successful read of the key
store: PostgreSQL down at start, a schema behind the release) refuses every keyed request with
503, so the instance says it is not ready and the load balancer sends that traffic to instances
that can serve it. A guard that decides from a last known state (API keys read once, the store
unreachable since) keeps the instance ready: every instance shares that store, so marking them
all not-ready during a database blip would turn a partial outage (no key changes for a while)
into a total one (no traffic at all).

Guards take part by having ``unready() -> str | None`` (why not, or ``None``). With
``workers: N`` each worker writes a marker file while it is not ready; the supervisor's
``/readyz`` is ready only when no worker has one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from bastion.config.models import BastionConfig
from bastion.pipeline.chain import GuardChain


def unready_reasons(chain: GuardChain) -> list[str]:
    """Why ``chain`` cannot serve yet (empty when it can)."""
    reasons: list[str] = []
    for guard in chain.guards:
        check = getattr(guard, "unready", None)
        if callable(check):
            reason = check()
            if reason:
                reasons.append(str(reason))
    return reasons


def marker_path(config: BastionConfig, pid: int) -> Path:
    return config.state_dir / "run" / f"worker-{pid}.unready"


def publish(config: BastionConfig, chain: GuardChain) -> None:
    """This worker's readiness for the supervisor: the marker exists while it is not ready."""
    path = marker_path(config, os.getpid())
    reasons = unready_reasons(chain)
    if reasons:
        if not path.exists():
            path.write_text("\n".join(reasons) + "\n")
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def workers_ready(config: BastionConfig, pids: list[int]) -> bool:
    return not any(marker_path(config, pid).exists() for pid in pids)
