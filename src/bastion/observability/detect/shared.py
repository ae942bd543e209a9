"""Detector state shared through Redis, so that several gateway instances detect as one.

What is shared, and how (none of it on the request path):

- *alerts*: an admitted alert claims its key with ``SET NX PX <cooldown>``; only the instance
  that wins publishes it, so N instances page once.
- *error spikes*: every ``sync_interval`` the counts each instance added to its windows since the
  last sync go to one hash per window (``count.lua``, ``HINCRBY``); the totals come back, and a
  window fires on all instances' answers. Detection lags by at most one interval.
- *new country*: a consumer's countries are one Redis set (``known.lua``), so a country known by
  any instance is known to all; kept 90 days after the last change.
- *credential stuffing*: the distinct accounts per source and sources per account of a window
  are Redis sets (``distinct.lua``); failed logins are rare events, each one script call.
- *enumeration by 404s*: counted like the spikes, one hash per window.

Sequential walks and payload outliers stay per instance (a walk is an order of requests and a
route's sizes are well sampled by one instance; a load balancer with affinity keeps walks
exact). When Redis is down every detector falls back on its local state and alerts are
published without the claim (a duplicate page is better than none).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from importlib import resources
from typing import Any

from bastion.backends.redis import RedisClient, Script
from bastion.config.models import BastionConfig
from bastion.errors import BackendUnavailable, describe
from bastion.observability.alerts.model import Alert
from bastion.observability.detect.monitor import Monitor

logger = logging.getLogger("bastion.detect")

KNOWN_TTL_MS = 90 * 86_400 * 1000
_CHUNK = 500  # fields per count.lua call


def _script(name: str) -> Script:
    folder = resources.files("bastion.observability.detect") / "lua"
    return Script(name, (folder / f"{name}.lua").read_text("utf-8"))


DISTINCT = _script("distinct")
KNOWN = _script("known")
COUNT = _script("count")


class RedisShared:
    """The shared half of a :class:`Monitor` (``monitoring.shared``: redis, or auto with
    ``redis.url`` set)."""

    def __init__(self, config: BastionConfig, client: RedisClient | None = None) -> None:
        self.config = config
        self.prefix = config.redis.key_prefix + "detect:"
        self.client = client or RedisClient.from_config(
            config.redis, scripts=[DISTINCT, KNOWN, COUNT]
        )
        self._own_client = client is None
        self.interval = config.monitoring.sync_interval
        self.cooldown_ms = max(1, int(config.monitoring.alerts.cooldown * 1000))
        self.monitor: Monitor | None = None
        self.syncs = 0
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def up(self) -> bool:
        return self.monitor is not None and self.client.up

    async def start(self, monitor: Monitor) -> None:
        self.monitor = monitor
        if monitor.new_country is not None:
            monitor.new_country.remote = self.country
        if monitor.stuffing is not None:
            monitor.stuffing.remote = self.failure
        if monitor.spikes is not None:
            monitor.spikes.shared = True
        if monitor.enumeration is not None:
            monitor.enumeration.shared = True
        if self._own_client:
            try:
                await self.client.connect()
            except BackendUnavailable as exc:
                logger.warning(
                    "detectors: Redis not reachable (%s); local state until it is", exc.message
                )
        self._task = asyncio.get_running_loop().create_task(self._sync_loop())

    async def close(self) -> None:
        task = self._task
        self._task = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._own_client:
            await self.client.close()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- alerts --------------------------------------------------------------------------------

    def claim(self, alert: Alert) -> bool:
        if not self.up:
            return False
        self._spawn(self._claim(alert))
        return True

    async def _claim(self, alert: Alert) -> None:
        assert self.monitor is not None
        key = self.prefix + "alert:" + alert.key
        try:
            won = await self.client.execute("SET", key, "1", "NX", "PX", self.cooldown_ms)
        except BackendUnavailable as exc:
            logger.warning("alert claim failed (%s); publishing here", exc.message)
            won = b"OK"
        if won is not None:
            self.monitor.publish(alert)

    # -- new country ---------------------------------------------------------------------------

    def country(self, consumer: str, ip: str, country: str, now: float) -> bool:
        if not self.up:
            return False
        self._spawn(self._country(consumer, ip, country, now))
        return True

    async def _country(self, consumer: str, ip: str, country: str, now: float) -> None:
        monitor = self.monitor
        assert monitor is not None
        assert monitor.new_country is not None
        detector = monitor.new_country
        key = self.prefix + "country:" + consumer
        cap = detector.config.max_countries
        try:
            added, before = await self.client.evalsha(KNOWN, [key], [country, KNOWN_TTL_MS, cap])
            known = await self.client.execute("SMEMBERS", key) if added and before else []
        except BackendUnavailable as exc:
            logger.debug("new-country check local (%s)", exc.message)
            alert = detector.learn(consumer, ip, country, now)
            if alert is not None:
                monitor.fire(alert)
            return
        if not added or not before:
            return
        others = sorted(c.decode() for c in known if c.decode() != country)
        monitor.fire(detector.alert(consumer, ip, country, others, now))

    # -- credential stuffing -------------------------------------------------------------------

    def failure(self, source: str, account: str, now: float) -> bool:
        if not self.up:
            return False
        self._spawn(self._failure(source, account, now))
        return True

    async def _failure(self, source: str, account: str, now: float) -> None:
        monitor = self.monitor
        assert monitor is not None
        assert monitor.stuffing is not None
        detector = monitor.stuffing
        config = detector.config
        index = int(now // config.window)
        ttl = int(config.window * 2000)
        window = f":{config.window:g}:{index}"
        checks = (
            ("source", source, account, config.accounts_per_source),
            ("account", account, source, config.sources_per_account),
        )
        try:
            for kind, subject, member, cap in checks:
                key = f"{self.prefix}stuffing:{kind}:{subject}{window}"
                before = await self.client.execute("SCARD", key)
                count = await self.client.evalsha(DISTINCT, [key], [member, ttl, cap])
                if count >= cap > before:
                    members = await self.client.execute("SMEMBERS", key)
                    names = sorted(m.decode() for m in members)
                    monitor.fire(detector.alert(kind, subject, names, now))
        except BackendUnavailable as exc:
            logger.debug("stuffing check local (%s)", exc.message)
            detector.remote = None
            try:
                monitor.fire_all(detector.failure(source, account, now))
            finally:
                detector.remote = self.failure

    # -- spikes --------------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sync()
            except BackendUnavailable as exc:
                logger.debug("detector sync skipped: %s", exc.message)
            except Exception as exc:
                logger.error("detector sync failed: %s", describe(exc))

    async def sync(self) -> None:
        """Add this instance's new window counts to the shared totals; fire what the totals
        reach."""
        monitor = self.monitor
        if monitor is None:
            return
        if not self.client.up:
            # Forget which windows wait for a sync: that map is keyed by client addresses and
            # would grow, outside the detectors' LRUs, for as long as Redis is away. Nothing is
            # lost: a window keeps its own count and what of it was synced, so the next sync of
            # a window touched again sends all it has not sent yet.
            if monitor.spikes is not None:
                monitor.spikes.dirty = {}
            if monitor.enumeration is not None:
                monitor.enumeration.dirty = {}
            return
        if monitor.spikes is not None:
            await self._sync_spikes(monitor)
        if monitor.enumeration is not None:
            await self._sync_misses(monitor)
        self.syncs += 1

    async def _add(self, hash_key: str, ttl: int, fields: list[tuple[str, int]]) -> list[int]:
        """Add ``fields`` (name, increment) to the hash; the totals, in order."""
        totals: list[int] = []
        for start in range(0, len(fields), _CHUNK):
            args: list[str | int] = [ttl]
            for name, delta in fields[start : start + _CHUNK]:
                args += [name, delta]
            totals += [int(t) for t in await self.client.evalsha(COUNT, [hash_key], args)]
        return totals

    async def _sync_misses(self, monitor: Monitor) -> None:
        enumeration = monitor.enumeration
        assert enumeration is not None
        dirty = enumeration.dirty
        if not dirty:
            return
        enumeration.dirty = {}
        window = enumeration.config.window
        by_index: dict[int, list[tuple[str, Any, int]]] = {}
        for subject, count in dirty.items():
            delta = count.count - count.synced
            if delta > 0:
                count.synced = count.count
                by_index.setdefault(count.index, []).append((subject, count, delta))
        now = monitor.clock()
        for index, items in by_index.items():
            hash_key = f"{self.prefix}notfound:{window:g}:{index}"
            fields = [(subject, delta) for subject, _, delta in items]
            totals = await self._add(hash_key, int(window * 3000), fields)
            for (subject, count, _), total in zip(items, totals, strict=True):
                if count.index == index:
                    count.remote = max(0, total - count.synced)
                    alert = enumeration.check(subject, count, now)
                    if alert is not None:
                        monitor.fire(alert)

    async def _sync_spikes(self, monitor: Monitor) -> None:
        spikes = monitor.spikes
        assert spikes is not None
        dirty = spikes.dirty
        if not dirty:
            return
        spikes.dirty = {}
        by_index: dict[int, list[tuple[tuple[str, str, str], Any, int]]] = {}
        for key, window in dirty.items():
            delta = window.count - window.synced
            if delta > 0:
                window.synced = window.count
                by_index.setdefault(window.index, []).append((key, window, delta))
        ttl = int(spikes.width * 3000)
        now = monitor.clock()
        for index, items in by_index.items():
            hash_key = f"{self.prefix}spike:{spikes.width:g}:{index}"
            fields = [("|".join(key), delta) for key, _, delta in items]
            totals = await self._add(hash_key, ttl, fields)
            for (key, window, _), total in zip(items, totals, strict=True):
                if window.index != index:
                    continue  # rolled over meanwhile
                window.remote = max(0, total - window.synced)
                alert = spikes.check(window, key, now)
                if alert is not None:
                    monitor.fire(alert)
