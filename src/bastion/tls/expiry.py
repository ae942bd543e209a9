"""Certificate expiry as security events: at start, then once a day (``tls.expiry_warning``).

Every certificate bastion relies on is checked: those it serves, the CAs it verifies client
certificates with, and the client certificate it presents to upstreams. One expiring within
``tls.expiry_warning`` is a ``tls.certificate_expiring`` event (and a log warning); one already
expired is ``tls.certificate_expired``. Events carry the file, subject, expiry and days left;
nothing secret is in a certificate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from bastion.config.tls import TLSConfig
from bastion.errors import ConfigError
from bastion.observability.events import EventSink, SecurityEvent
from bastion.tls.certs import CertificateFacts, load_chain

logger = logging.getLogger("bastion.tls")

CHECK_EVERY = 86400.0


def watched_certificates(config: TLSConfig, served: Iterable[Path] = ()) -> list[tuple[str, Path]]:
    """``(role, file)`` of every certificate ``config`` relies on; ``served`` replaces the
    configured server certificates (the development certificate when none is configured)."""
    found: list[tuple[str, Path]] = [("server", path) for path in served]
    if not found:
        found = [("server", files.cert) for files in config.certificates]
    found += [("client_ca", path) for path in config.client_auth.ca]
    upstreams = [config.upstream, *config.upstream_routes.values()]
    for upstream in upstreams:
        if upstream.client_cert is not None:
            found.append(("upstream_client", upstream.client_cert))
    return list(dict.fromkeys(found))


def expiry_events(
    certificates: Iterable[tuple[str, Path]], warning: float, now: float
) -> list[SecurityEvent]:
    """The events due at ``now`` (seconds since the epoch) for ``certificates``."""
    events = []
    moment = datetime.fromtimestamp(now, UTC)
    for role, path in certificates:
        try:
            facts = CertificateFacts.of(load_chain(path)[0])
        except ConfigError as exc:
            logger.error("tls: cannot check the expiry of %s: %s", path, exc)
            continue
        left = facts.not_after.timestamp() - now
        if left > warning:
            continue
        action = "tls.certificate_expired" if left <= 0 else "tls.certificate_expiring"
        days = round(left / 86400, 1)
        text = "has expired" if left <= 0 else f"expires in {days} days"
        logger.warning("tls: %s certificate %s (%s) %s", role, path, facts.subject, text)
        events.append(
            SecurityEvent(
                action=action,
                outcome="unknown",
                timestamp=moment.timestamp(),
                guard="tls",
                reason=f"{role} certificate {text}",
                fields={
                    "certificate": {
                        "role": role,
                        "file": str(path),
                        "subject": facts.subject,
                        "issuer": facts.issuer,
                        "not_after": facts.not_after.isoformat(),
                        "days_left": days,
                        "sha256": facts.fingerprint,
                    }
                },
            )
        )
    return events


async def watch_expiry(
    certificates: Callable[[], Iterable[tuple[str, Path]]],
    warning: float,
    events: EventSink,
    stop: asyncio.Event,
    *,
    clock: Callable[[], float] = time.time,
    every: float = CHECK_EVERY,
) -> None:
    """Check now, then every ``every`` seconds until ``stop``."""
    while True:
        for event in expiry_events(certificates(), warning, clock()):
            events.emit(event)
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            continue
        return
