"""Rate limits and lockouts shared by every gateway instance, in Redis.

Each decision is one Lua script (``lua/``, shipped as package data), run atomically by Redis and
batched with the other decisions of the same event-loop tick by :class:`RedisClient`. The scripts
do the arithmetic of :mod:`bastion.ratelimit.algorithms` operation for operation, on whole
microseconds held in Lua's doubles (exact below 2**53), so that memory and Redis give the same
verdicts: the scenario vectors of ``tests/ratelimit/scenarios.py`` run against both.

Time is Redis ``TIME`` unless a clock is injected (tests), in which case ``now`` travels with
the call. Keys are ``<key_prefix>rl:{<namespace>:<key>}:<g|w|l>`` and
``<key_prefix>lo:{<namespace>:<key>}``: each script touches one key, so a cluster sends it to one
slot whatever the client key holds, and every key carries a PEXPIRE, so nothing lingers once it
no longer matters. The algorithm's letter keeps a changed configuration from reading another
algorithm's state.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any, Final

from bastion.backends.redis import RedisClient, Script, ScriptCommand, bulk
from bastion.ratelimit.algorithms import US, Params, microseconds
from bastion.ratelimit.core import Algorithm, Clock, LockoutPolicy, Rate, Verdict

_EXACT: Final = 2**53
_SUFFIX: Final[dict[Algorithm, bytes]] = {
    "gcra": b"}:g",
    "sliding_window": b"}:w",
    "sliding_log": b"}:l",
}
_ONE: Final = bulk(b"1")
_SERVER_TIME: Final = bulk(b"")


def load_script(name: str) -> Script:
    """``lua/<name>.lua`` with the shared helpers of ``lua/common.lua`` in front."""
    folder = resources.files("bastion.ratelimit.storage") / "lua"
    common = (folder / "common.lua").read_text("utf-8")
    return Script(name, common + "\n" + (folder / f"{name}.lua").read_text("utf-8"))


SCRIPTS: Final[dict[str, Script]] = {
    name: load_script(name) for name in ("gcra", "sliding_window", "sliding_log", "lockout")
}


def check_rate(algorithm: Algorithm, rate: Rate) -> Params:
    """Refuse (``ValueError``) a rate the Redis scripts cannot count exactly; call it when a
    configuration is loaded, so that ``check-config`` says so before any request does.

    Lua numbers are doubles: the sliding window multiplies a count by microseconds, exact only
    while ``limit * period`` stays below 2**53 microseconds (about 9e9 hits x seconds, e.g.
    ``100000/day``); gcra and sliding_log have no such bound.
    """
    params = Params(algorithm, rate)
    if algorithm == "sliding_window" and rate.limit * params.period >= _EXACT:
        raise ValueError(
            f"sliding_window in Redis counts exactly up to limit x period < 2**53 "
            f"microseconds (about 9e9 hits x seconds); {rate} exceeds it: use gcra"
        )
    return params


def _key_head(key_prefix: str, kind: str, namespace: str) -> bytes:
    return f"{key_prefix}{kind}:{{{namespace}:".encode()


class RedisLimiter:
    """One rate with one algorithm, counted in Redis (:class:`bastion.ratelimit.core.AsyncLimiter`).

    ``namespace`` separates the counters of different policies (``per-ip``,
    ``per-consumer#gold``); ``clock`` (seconds) replaces Redis ``TIME`` in tests.
    """

    __slots__ = (
        "_capacity",
        "_client",
        "_clock",
        "_command",
        "_decode",
        "_hit_args",
        "_hit_rest",
        "_key_fixed",
        "_key_head",
        "_key_tail",
        "_lead",
        "_peek_args",
        "_rate",
        "_refused_retry",
        "algorithm",
    )

    def __init__(
        self,
        client: RedisClient,
        algorithm: Algorithm,
        rate: Rate,
        *,
        namespace: str,
        key_prefix: str = "bastion:",
        clock: Clock | None = None,
    ) -> None:
        params = check_rate(algorithm, rate)
        script = SCRIPTS[algorithm]
        client.register(script)
        if algorithm == "gcra":
            constants: tuple[int, ...] = (params.interval, params.tolerance, params.capacity)
        else:
            constants = (params.period, params.capacity)
        encoded = b"".join([bulk(b"%d" % value) for value in constants])
        self._client = client
        self._command: ScriptCommand = script.command(1, 3 + len(constants))
        self._hit_args = _ONE + encoded
        self._peek_args = bulk(b"0") + encoded
        self._key_head = _key_head(key_prefix, "rl", namespace)
        self._key_tail = _SUFFIX[algorithm]
        # A hit's command is ``_lead $<len>\r\n <key head> <key> <rest>``: all but the key and
        # its length encoded here once; ``_hit_rest`` is the whole rest of a hit of cost 1 on
        # Redis time (the gateway's case).
        self._lead = self._command.head + b"$"
        self._key_fixed = len(self._key_head) + len(self._key_tail)
        self._hit_rest = self._key_tail + b"\r\n" + _ONE + _SERVER_TIME + self._hit_args
        self._decode = self._verdict  # bound once: the reply handler calls it per decision
        self._clock = clock
        self._capacity = params.capacity
        self._refused_retry = params.refused_retry
        self._rate = rate
        self.algorithm = algorithm

    @property
    def rate(self) -> Rate:
        return self._rate

    def redis_key(self, key: str) -> str:
        """The Redis key holding ``key``'s state (tests and operators)."""
        return (self._key_head + key.encode("utf-8", "surrogateescape") + self._key_tail).decode(
            "utf-8", "surrogateescape"
        )

    async def hit(self, key: str, cost: int = 1) -> Verdict:
        return await self.decide(key, cost)

    async def peek(self, key: str) -> Verdict:
        return await self._submit(key, _ONE, self._peek_args)

    def decide(self, key: str, cost: int = 1) -> asyncio.Future[Verdict]:
        """:meth:`hit` without a coroutine: a future that resolves with the verdict (the hot
        path, awaited directly by :class:`~bastion.ratelimit.storage.failover.FailoverLimiter`).
        Raises :class:`BackendUnavailable` at once while the connection is down."""
        if cost == 1 and self._clock is None:
            raw = key.encode("utf-8", "surrogateescape")
            payload = b"%b%d\r\n%b%b%b" % (
                self._lead,
                self._key_fixed + len(raw),
                self._key_head,
                raw,
                self._hit_rest,
            )
            return self._client.submit(self._command, payload, self._decode)
        if cost < 1:
            raise ValueError(f"a hit costs at least 1, got {cost}")
        return self._submit(key, _ONE if cost == 1 else bulk(b"%d" % cost), self._hit_args)

    def _submit(self, key: str, cost_arg: bytes, args: bytes) -> asyncio.Future[Verdict]:
        raw = key.encode("utf-8", "surrogateescape")
        clock = self._clock
        now = _SERVER_TIME if clock is None else bulk(b"%d" % microseconds(clock()))
        payload = b"%b%d\r\n%b%b%b\r\n%b%b%b" % (
            self._lead,
            self._key_fixed + len(raw),
            self._key_head,
            raw,
            self._key_tail,
            cost_arg,
            now,
            args,
        )
        return self._client.submit(self._command, payload, self._decode)

    def _verdict(self, reply: Any) -> Verdict:
        allowed, remaining, reset, retry = reply
        if allowed:
            return Verdict(True, self._capacity, remaining, reset / US)
        return Verdict(
            False,
            self._capacity,
            remaining,
            reset / US,
            retry / US if retry >= 0 else self._refused_retry,
        )


class RedisLockout:
    """Failed attempts and lockouts in Redis (:class:`bastion.ratelimit.core.AsyncLockout`),
    with :class:`~bastion.ratelimit.storage.memory.MemoryLockout`'s rules: failures while locked
    count for nothing, a success forgets failures and streak but never lifts a running lock.

    Two keys per client key, ``<key_prefix>lo:{<namespace>:<key>}:s`` (lock and streak) and
    ``...:f`` (failure times), in one hash slot; ``clock`` (seconds) replaces Redis ``TIME``.
    """

    __slots__ = ("_args", "_client", "_clock", "_command", "_key_head", "_policy")

    def __init__(
        self,
        client: RedisClient,
        policy: LockoutPolicy,
        *,
        namespace: str = "login",
        key_prefix: str = "bastion:",
        clock: Clock | None = None,
    ) -> None:
        script = SCRIPTS["lockout"]
        client.register(script)
        constants = (
            policy.window,
            policy.window + policy.ceiling,
            policy.max_failures,
            policy.base,
            policy.ceiling,
        )
        self._args = b"".join([bulk(repr(value).encode()) for value in constants])
        self._client = client
        self._command: ScriptCommand = script.command(2, 2 + len(constants))
        self._key_head = _key_head(key_prefix, "lo", namespace)
        self._clock = clock
        self._policy = policy

    @property
    def policy(self) -> LockoutPolicy:
        return self._policy

    def redis_keys(self, key: str) -> tuple[str, str]:
        """The Redis keys of ``key``: lock and streak, failure times."""
        base = self._key_head + key.encode("utf-8", "surrogateescape") + b"}"
        return (base + b":s").decode("utf-8", "surrogateescape"), (base + b":f").decode(
            "utf-8", "surrogateescape"
        )

    async def locked_for(self, key: str) -> float:
        return float(await self._call(key, _LOCKED_FOR))

    async def failure(self, key: str) -> float:
        return float(await self._call(key, _FAILURE))

    async def success(self, key: str) -> None:
        await self._call(key, _SUCCESS)

    def _call(self, key: str, operation: bytes) -> Any:
        base = self._key_head + key.encode("utf-8", "surrogateescape") + b"}"
        clock = self._clock
        now = _SERVER_TIME if clock is None else bulk(repr(float(clock())).encode())
        tail = b"%b%b%b%b%b" % (bulk(base + b":s"), bulk(base + b":f"), operation, now, self._args)
        return self._client.call(self._command, tail)


_LOCKED_FOR: Final = bulk(b"locked_for")
_FAILURE: Final = bulk(b"failure")
_SUCCESS: Final = bulk(b"success")
