"""One way for every static and attestation check to turn what it saw into findings."""

from __future__ import annotations

from collections.abc import Sequence

from bastion.audit.model import CheckInfo, Evidence, Finding, failed, passed, skipped


def verdict(
    info: CheckInfo,
    problems: Sequence[tuple[str, str]],
    ok: str,
    *,
    examined: int = 1,
    nothing: str = "",
) -> list[Finding]:
    """One failed finding per ``(location, message)`` problem, else one pass saying ``ok``.

    ``examined == 0`` (no operation, no scheme to look at) is a skip saying ``nothing``, so a
    check with nothing to judge neither rewards nor punishes the score.
    """
    if problems:
        return [failed(info, message, Evidence(message, where)) for where, message in problems]
    if examined == 0:
        return [skipped(info, nothing or "nothing to examine")]
    return [passed(info, ok)]
