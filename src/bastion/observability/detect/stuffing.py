"""Credential stuffing: failed logins across many accounts from one source, or on one account
from many sources.

Fed by authentication failure events (``auth.invalid_credentials``, ``auth.invalid_token``,
``auth.token_refused`` for wrong client credentials: the account is the consumer or key id the
event names) and by failed answers (401, 403) of ``login: true`` routes, whose account is the
HTTP Basic user name or the configured ``rate_limit.login.account_header``. Windows are
``window`` seconds long; a window fires once per source and once per account, when its distinct
count reaches the threshold.

The accounts one source tried are typed by the client, and a user who types a password into the
user-name field would put it in the alert: a source's alert shows them masked (:func:`masked`:
the first characters and the length), never whole. An account many sources tried is shown as it
is (a password typed once cannot reach ``sources_per_account`` addresses).

Memory: ``max_keys`` sources and accounts, each holding at most threshold members.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from bastion.config.monitoring import StuffingConfig
from bastion.observability.alerts.model import Alert
from bastion.observability.detect.lru import Lru


def masked(account: str) -> str:
    """``account`` as a source's alert shows it: two leading characters of a name of 8 or more,
    one of a name of 4 to 7, none of a shorter one, then its length (``victim3`` is ``v…(7)``)."""
    length = len(account)
    shown = 2 if length >= 8 else 1 if length >= 4 else 0
    return f"{account[:shown]}…({length})"


class _Distinct:
    __slots__ = ("fired", "index", "members")

    def __init__(self, index: int) -> None:
        self.index = index
        self.members: set[str] = set()
        self.fired = False


class StuffingDetector:
    detector: ClassVar[str] = "credential_stuffing"

    def __init__(self, config: StuffingConfig) -> None:
        self.config = config
        self.keys: Lru[tuple[str, str], _Distinct] = Lru(config.max_keys)
        # Set by the Redis sharing: takes a (source, account, now) over when it can.
        self.remote: Callable[[str, str, float], bool] | None = None

    def failure(self, source: str, account: str, now: float) -> list[Alert]:
        """One failed login by ``source`` (an IP) on ``account``."""
        if self.remote is not None and self.remote(source, account, now):
            return []
        index = int(now // self.config.window)
        alerts: list[Alert] = []
        accounts = self._add(("source", source), account, index, self.config.accounts_per_source)
        if accounts is not None:
            alerts.append(self.alert("source", source, accounts, now))
        sources = self._add(("account", account), source, index, self.config.sources_per_account)
        if sources is not None:
            alerts.append(self.alert("account", account, sources, now))
        return alerts

    def _add(self, key: tuple[str, str], member: str, index: int, limit: int) -> list[str] | None:
        """Add ``member``; the members when the distinct count has just reached ``limit``."""
        entry = self.keys.get(key)
        if entry is None or entry.index != index:
            entry = _Distinct(index)
            self.keys.put(key, entry)
        if entry.fired:
            return None
        entry.members.add(member)
        if len(entry.members) < limit:
            return None
        entry.fired = True
        members = sorted(entry.members)
        entry.members = set()  # the alert holds them; the window needs no more memory
        return members

    def alert(self, kind: str, subject: str, members: list[str], now: float) -> Alert:
        window = self.config.window
        if kind == "source":
            summary = (
                f"credential stuffing from {subject}: failed logins on {len(members)} accounts "
                f"within {window:g} s"
            )
            accounts = [masked(account) for account in members[:50]]
            evidence: dict[str, object] = {"ip": subject, "accounts": accounts}
        else:
            summary = (
                f"credential stuffing on account {subject}: failed logins from "
                f"{len(members)} addresses within {window:g} s"
            )
            evidence = {"account": subject, "ips": members[:50]}
        evidence["distinct"] = len(members)
        evidence["window_seconds"] = window
        return Alert(
            detector=self.detector,
            key=f"stuffing:{kind}:{subject}",
            summary=summary,
            timestamp=now,
            severity="critical",
            evidence=evidence,
        )
