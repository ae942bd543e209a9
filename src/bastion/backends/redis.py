"""An asyncio Redis client for decisions on the hot path.

One long-lived connection per client: an :class:`asyncio.Protocol` whose replies ``hiredis``
parses. Commands issued during one event-loop tick are queued; the first of them schedules a
flush with ``loop.call_soon``, and the flush writes the whole queue with one ``transport.write``.
N concurrent decisions therefore cost one write, one read and one wake-up of Redis, and the
replies resolve the callers' futures in order. Every script call has its constant head
(``EVALSHA <sha> <numkeys>``) encoded once (:class:`ScriptCommand`); a call encodes only its keys
and variable arguments. A caller that turns each reply into a value of its own (a rate-limit
verdict) hands :meth:`RedisClient.submit` the whole encoded command and a ``decode`` function:
the reply handler resolves the future with the decoded value, so the caller needs no coroutine
of its own around the future (measured per decision with ``bench/redis_decision_micro.py``).

Scripts are loaded (``SCRIPT LOAD``) on every connect. A ``NOSCRIPT`` reply (after a
``SCRIPT FLUSH``, or a failover to a server that never saw the script) sends that call again as
``EVAL`` with the body, which also puts the script back in the server's cache.

Failures are :class:`bastion.errors.BackendUnavailable` and nothing else, chained from the
driver's error: a refused or lost connection fails the calls in flight; a batch not answered
within ``command_timeout`` fails every call in flight and drops the connection (replies on a
pipelined connection cannot be skipped). While disconnected, calls fail at once, without a
connection attempt per call; a background task reconnects with exponential back-off, and state
listeners hear ``(False, error)`` when the connection goes and ``(True, None)`` when it is back.
Messages and log lines never contain the URL or its password.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

from bastion.config.backends import RedisConfig
from bastion.errors import BackendUnavailable

logger = logging.getLogger("bastion.backends.redis")

Arg = str | bytes | int | float
StateListener = Callable[[bool, BackendUnavailable | None], None]


class RedisCommandError(BackendUnavailable):
    """Redis answered a command with an error (``OOM``, ``READONLY``, ``NOAUTH``, a script error).

    A subclass of :class:`BackendUnavailable`: a backend that refuses to count is, for a caller,
    one that cannot count, and the failure policy applies.
    """

    code = "backend.refused"

    def __init__(self, message: str, reply: str = "") -> None:
        super().__init__(message)
        self.reply = reply


def bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


def encode_arg(value: Arg) -> bytes:
    """One command argument as a RESP bulk string (floats by ``repr``: they round-trip)."""
    if isinstance(value, bytes):
        return bulk(value)
    if isinstance(value, str):
        return bulk(value.encode())
    if isinstance(value, bool):
        raise TypeError("a Redis argument cannot be a bool")
    if isinstance(value, int):
        return bulk(b"%d" % value)
    if isinstance(value, float):
        return bulk(repr(value).encode())
    raise TypeError(
        f"a Redis argument must be str, bytes, int or float, not {type(value).__name__}"
    )


def encode_command(*args: Arg) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join([encode_arg(a) for a in args])


class Script:
    """A Lua script, run by its SHA1. ``command(nkeys, nargs)`` gives its pre-encoded call head."""

    __slots__ = ("_shapes", "name", "sha", "source")

    def __init__(self, name: str, source: str | bytes) -> None:
        self.name = name
        self.source = source.encode() if isinstance(source, str) else source
        self.sha = hashlib.sha1(self.source, usedforsecurity=False).hexdigest()
        self._shapes: dict[tuple[int, int], ScriptCommand] = {}

    def command(self, nkeys: int, nargs: int) -> ScriptCommand:
        shape = (nkeys, nargs)
        command = self._shapes.get(shape)
        if command is None:
            command = self._shapes[shape] = ScriptCommand(self, nkeys, nargs)
        return command

    def __repr__(self) -> str:
        return f"Script({self.name!r}, sha={self.sha[:12]})"


class ScriptCommand:
    """The constant start of calls of one shape: ``*N EVALSHA <sha> <numkeys>``; a call adds
    its ``nkeys + nargs`` bulk strings (the *tail*). ``fallback`` is the same with ``EVAL`` and
    the body, sent once after a ``NOSCRIPT``."""

    __slots__ = ("fallback", "head", "script")

    def __init__(self, script: Script, nkeys: int, nargs: int) -> None:
        count = b"*%d\r\n" % (3 + nkeys + nargs)
        numkeys = encode_arg(nkeys)
        self.script = script
        self.head = count + bulk(b"EVALSHA") + bulk(script.sha.encode()) + numkeys
        self.fallback = count + bulk(b"EVAL") + bulk(script.source) + numkeys


Decode = Callable[[Any], Any]
"""Turns one (non-error) reply into the value its future resolves with."""

# One queued or in-flight call: its future, its script command (None for a plain command or a
# NOSCRIPT retry), the whole encoded command (for a script call, ``command.head`` + its keys and
# arguments) and the reply's decoder (None: the future gets the reply itself).
_Entry = tuple["asyncio.Future[Any]", ScriptCommand | None, bytes, Decode | None]
_ReplyError = hiredis.ReplyError
_Future = asyncio.Future


@dataclass(frozen=True)
class RedisTarget:
    """Where and how to connect, parsed from the URL; the password never shows in a repr."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # unix socket
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0

    @classmethod
    def parse(cls, url: str) -> RedisTarget:
        """``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS, verified
        against the system trust store), ``unix:///path/to.sock[?db=N]``."""
        expected = "expected redis://[user:password@]host[:port][/db], rediss://... or unix:///path"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError(f"invalid Redis URL: {expected}") from None
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        query = parse_qs(parts.query)
        db_text = query.get("db", [""])[0]
        if parts.scheme in ("redis", "rediss"):
            if not parts.hostname:
                raise ValueError(f"invalid Redis URL, no host: {expected}")
            db_text = parts.path.strip("/") or db_text
            host, path = parts.hostname, None
        elif parts.scheme == "unix":
            if not parts.path:
                raise ValueError(f"invalid Redis URL, no socket path: {expected}")
            host, path = "", parts.path
        else:
            raise ValueError(f"invalid Redis URL scheme: {expected}")
        if db_text and not db_text.isdigit():
            raise ValueError("invalid Redis URL: the database must be a number")
        return cls(
            host=host,
            port=port or 6379,
            path=path,
            tls=parts.scheme == "rediss",
            username=username,
            password=password,
            db=int(db_text or 0),
        )


class _Connection(asyncio.Protocol):
    """One connection: hiredis parses the replies, which resolve ``pending`` in order."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.pending: deque[_Entry] = deque()
        self.sent = 0  # commands written, for the timeout watch
        self.batches: deque[tuple[int, float]] = deque()  # (sent after the batch, deadline)
        self.watch: asyncio.TimerHandle | None = None
        self.failure: BackendUnavailable | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        # The per-reply loop is the hot path: locals only, one gets() per reply.
        reader = self.reader
        pending = self.pending
        reader.feed(data)
        gets = reader.gets
        try:
            reply = gets()
        except hiredis.ProtocolError as exc:
            self.fail(BackendUnavailable("Redis sent a malformed reply"), exc)
            return
        while reply is not False:
            if not pending:
                self.fail(BackendUnavailable("Redis sent a reply nobody asked for"), None)
                return
            entry = pending.popleft()
            future = entry[0]
            if type(reply) is _ReplyError:
                self.client._reply_error(entry, reply)
            elif not future.done():
                decode = entry[3]
                if decode is None:
                    future.set_result(reply)
                else:
                    try:
                        future.set_result(decode(reply))
                    except Exception as exc:  # a reply of the wrong shape fails its call only
                        future.set_exception(exc)
            try:
                reply = gets()
            except hiredis.ProtocolError as exc:
                self.fail(BackendUnavailable("Redis sent a malformed reply"), exc)
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None
        failure = self.failure or BackendUnavailable("Redis connection lost")
        cause = failure.__cause__ or exc
        for entry in self.pending:
            if not entry[0].done():
                error = BackendUnavailable(failure.message)
                error.__cause__ = cause
                entry[0].set_exception(error)
        self.pending.clear()
        self.client._lost(self, failure, cause)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def fail(self, failure: BackendUnavailable, cause: BaseException | None) -> None:
        """Give up on this connection: every call in flight fails with ``failure``."""
        if self.failure is None:
            failure.__cause__ = cause
            self.failure = failure
        if self.transport is not None:
            self.transport.abort()

    def send_now(self, commands: Sequence[bytes]) -> list[asyncio.Future[Any]]:
        """Write ``commands`` at once, outside the batch queue (the handshake)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        self.pending.extend(
            (fut, None, cmd, None) for fut, cmd in zip(futures, commands, strict=True)
        )
        self.transport.write(b"".join(commands))
        return futures


class RedisClient:
    """A batching Redis client: ``await client.evalsha(script, keys, args)``.

    ``connect()`` once at start (it raises :class:`BackendUnavailable` when Redis is not there
    within ``connect_timeout``, and keeps trying in the background either way); ``close()`` at
    the end. ``call``, ``evalsha`` and ``execute`` return futures; they raise at once while the
    connection is down.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 1.0,
        command_timeout: float = 0.25,
        backoff: tuple[float, float] = (0.05, 2.0),
        scripts: Sequence[Script] = (),
    ) -> None:
        self.target = RedisTarget.parse(url)
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.backoff = backoff
        self.scripts: dict[str, Script] = {s.sha: s for s in scripts}
        self.flushes = 0  # batches written: one per event-loop tick with calls
        self.commands = 0  # commands written
        self._listeners: list[StateListener] = []
        self._conn: _Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._entries: list[_Entry] = []
        self._chunks: list[bytes] = []
        self._flush_scheduled = False
        self._closed = False
        self._was_up = False
        self._up = asyncio.Event()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._last_error: BaseException | None = None

    @classmethod
    def from_config(cls, config: RedisConfig, scripts: Sequence[Script] = ()) -> RedisClient:
        if config.url is None:
            raise ValueError("RedisConfig.url is not set")
        return cls(
            config.url,
            connect_timeout=config.connect_timeout,
            command_timeout=config.command_timeout,
            scripts=scripts,
        )

    # -- state ---------------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._conn is not None

    def add_listener(self, listener: StateListener) -> None:
        """``listener(False, error)`` when the connection is lost (``error`` says why),
        ``listener(True, None)`` when it is back."""
        self._listeners.append(listener)

    def register(self, script: Script) -> None:
        """Load ``script`` now (in this tick's batch, ahead of its first call) and on every
        connect. A call of a script never registered still works, by EVAL after NOSCRIPT."""
        if script.sha in self.scripts:
            return
        self.scripts[script.sha] = script
        if self._conn is not None and self._loop is not None:
            future = self._loop.create_future()
            future.add_done_callback(_ignore_result)
            self._enqueue(future, encode_command(b"SCRIPT", b"LOAD", script.source))

    def _notify(self, up: bool, error: BackendUnavailable | None = None) -> None:
        for listener in list(self._listeners):
            try:
                listener(up, error)
            except Exception:
                logger.exception("a Redis state listener failed")

    # -- connecting ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Wait until connected; :class:`BackendUnavailable` after ``connect_timeout``."""
        if self._closed:
            raise BackendUnavailable("Redis client is closed")
        if self._conn is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._start_reconnecting()
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self._up.wait()
        except TimeoutError:
            raise BackendUnavailable(
                f"Redis could not be reached within {self.connect_timeout:g} s"
            ) from self._last_error

    def _start_reconnecting(self) -> None:
        if self._closed or (self._reconnect_task is not None and not self._reconnect_task.done()):
            return
        assert self._loop is not None
        self._reconnect_task = self._loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay, ceiling = self.backoff
        while not self._closed:
            try:
                await self._open()
                return
            except BackendUnavailable as exc:
                self._last_error = exc
                logger.debug("Redis connection attempt failed: %s", exc.message)
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, ceiling)

    async def _open(self) -> None:
        target = self.target
        loop = asyncio.get_running_loop()
        conn = _Connection(self)
        try:
            async with asyncio.timeout(self.connect_timeout):
                if target.path is not None:
                    await loop.create_unix_connection(lambda: conn, target.path)
                else:
                    tls = ssl.create_default_context() if target.tls else None
                    await loop.create_connection(
                        lambda: conn,
                        target.host,
                        target.port,
                        ssl=tls,
                        server_hostname=target.host if tls else None,
                    )
                await self._handshake(conn)
        except BackendUnavailable:
            conn.abort()
            raise
        except (OSError, TimeoutError, hiredis.HiredisError) as exc:
            conn.abort()
            raise BackendUnavailable("Redis could not be reached") from exc
        if self._closed:
            conn.abort()
            return
        self._conn = conn
        self._up.set()
        if self._was_up:
            logger.warning("Redis connection restored")
        else:
            logger.info("Redis connected")
        self._was_up = True
        self._notify(True)

    async def _handshake(self, conn: _Connection) -> None:
        target = self.target
        steps: list[tuple[bytes, str]] = []
        if target.password is not None:
            auth: tuple[Arg, ...] = (target.password,)
            if target.username:
                auth = (target.username, target.password)
            steps.append((encode_command(b"AUTH", *auth), "Redis refused the credentials"))
        if target.db:
            steps.append((encode_command(b"SELECT", target.db), "Redis refused the database"))
        steps.append((encode_command(b"PING"), "Redis refused PING"))
        for script in self.scripts.values():
            steps.append(
                (encode_command(b"SCRIPT", b"LOAD", script.source), "Redis refused a script")
            )
        futures = conn.send_now([command for command, _ in steps])
        replies = await asyncio.gather(*futures, return_exceptions=True)
        for reply, (_, refusal) in zip(replies, steps, strict=True):
            if isinstance(reply, RedisCommandError):
                raise RedisCommandError(refusal, reply.reply) from None
            if isinstance(reply, BaseException):
                raise reply

    def _lost(self, conn: _Connection, failure: BackendUnavailable, cause: Any) -> None:
        """The connection ``conn`` is gone: fail what is queued, tell listeners, reconnect."""
        if conn is not self._conn:
            return
        self._conn = None
        self._up.clear()
        self._last_error = cause if isinstance(cause, BaseException) else failure
        self._fail_queued(failure.message)
        if self._closed:
            return
        logger.warning("%s; Redis calls fail until the connection is back", failure.message)
        self._notify(False, failure)
        self._start_reconnecting()

    # -- commands ------------------------------------------------------------------------------

    def call(self, command: ScriptCommand, tail: bytes) -> asyncio.Future[Any]:
        """Queue one script call; ``tail`` is its keys and arguments, RESP-encoded."""
        return self.submit(command, command.head + tail, None)

    def submit(
        self, command: ScriptCommand, payload: bytes, decode: Decode | None
    ) -> asyncio.Future[Any]:
        """Queue one script call: ``payload`` is the whole command, ``command.head`` followed by
        its keys and arguments, RESP-encoded; the future resolves with ``decode(reply)``.

        The hot path: no encoding here. The call is written with every other call of this
        event-loop tick, in one ``transport.write``.
        """
        loop = self._loop
        if self._conn is None or loop is None:
            raise self._unavailable()
        # Future() takes the running loop, which is this client's (its transport lives there):
        # about half the instructions of loop.create_future(), whose loop= keyword is parsed.
        future: asyncio.Future[Any] = _Future()
        self._entries.append((future, command, payload, decode))
        self._chunks.append(payload)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def evalsha(
        self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]
    ) -> asyncio.Future[Any]:
        """Run ``script`` (EVALSHA, EVAL after a NOSCRIPT) within this tick's batch."""
        if script.sha not in self.scripts:
            self.register(script)
        tail = b"".join([encode_arg(k) for k in keys] + [encode_arg(a) for a in args])
        return self.call(script.command(len(keys), len(args)), tail)

    def execute(self, *args: Arg) -> asyncio.Future[Any]:
        """Run any command within this tick's batch (``execute("GET", key)``)."""
        if self._conn is None:
            raise self._unavailable()
        assert self._loop is not None
        future = self._loop.create_future()
        self._enqueue(future, encode_command(*args))
        return future

    def _enqueue(self, future: asyncio.Future[Any], payload: bytes) -> None:
        assert self._loop is not None
        self._entries.append((future, None, payload, None))
        self._chunks.append(payload)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    async def ping(self) -> float:
        """One round trip; its duration in seconds."""
        start = time.perf_counter()
        await self.execute(b"PING")
        return time.perf_counter() - start

    def _unavailable(self) -> BackendUnavailable:
        if self._closed:
            return BackendUnavailable("Redis client is closed")
        error = BackendUnavailable("Redis is unavailable; reconnecting in the background")
        error.__cause__ = self._last_error
        return error

    def _flush(self) -> None:
        self._flush_scheduled = False
        entries = self._entries
        chunks = self._chunks
        if not entries:
            return
        self._entries = []
        self._chunks = []
        conn = self._conn
        if conn is None or conn.transport is None:
            self._fail_entries(entries, "Redis connection lost")
            return
        conn.pending.extend(entries)
        conn.transport.write(b"".join(chunks))
        self.flushes += 1
        self.commands += len(entries)
        conn.sent += len(entries)
        loop = self._loop
        assert loop is not None
        deadline = loop.time() + self.command_timeout
        conn.batches.append((conn.sent, deadline))
        if conn.watch is None:
            conn.watch = loop.call_at(deadline, self._watch, conn)

    def _watch(self, conn: _Connection) -> None:
        """The oldest batch in flight must be answered by its deadline."""
        conn.watch = None
        if conn.closed:
            return
        answered = conn.sent - len(conn.pending)
        batches = conn.batches
        while batches and batches[0][0] <= answered:
            batches.popleft()
        if not batches:
            return
        assert self._loop is not None
        if batches[0][1] <= self._loop.time():
            error = BackendUnavailable(f"Redis did not answer within {self.command_timeout:g} s")
            conn.fail(error, TimeoutError())
            return
        conn.watch = self._loop.call_at(batches[0][1], self._watch, conn)

    def _reply_error(self, entry: _Entry, reply: hiredis.ReplyError) -> None:
        future, command, payload, decode = entry
        text = str(reply)
        if command is not None and text.startswith("NOSCRIPT") and self._conn is not None:
            # Queued anew (not written at once) so replies keep their order; the retry is a
            # plain command (no second fallback), its reply decoded as the first would have been.
            assert self._loop is not None
            retry = command.fallback + payload[len(command.head) :]
            self._entries.append((future, None, retry, decode))
            self._chunks.append(retry)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)
            return
        if not future.done():
            word = _first_word(reply)
            future.set_exception(RedisCommandError(f"Redis refused the command ({word})", text))

    def _fail_queued(self, message: str) -> None:
        entries = self._entries
        self._entries = []
        self._chunks = []
        self._fail_entries(entries, message)

    def _fail_entries(self, entries: list[_Entry], message: str) -> None:
        for future, _, _, _ in entries:
            if not future.done():
                error = BackendUnavailable(message)
                error.__cause__ = self._last_error
                future.set_exception(error)

    # -- closing -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connection and stop reconnecting; calls in flight fail."""
        self._closed = True
        task = self._reconnect_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn = self._conn
        self._conn = None
        self._up.clear()
        self._fail_queued("Redis client is closed")
        if conn is not None and conn.transport is not None:
            conn.failure = BackendUnavailable("Redis client is closed")
            conn.transport.close()


def _ignore_result(future: asyncio.Future[Any]) -> None:
    """A SCRIPT LOAD's outcome does not matter (a call falls back on EVAL): only retrieve it."""
    if not future.cancelled():
        future.exception()


def _first_word(reply: BaseException) -> str:
    """The error code of a Redis error reply (``WRONGPASS``, ``NOSCRIPT``, ``ERR``)."""
    text = str(reply)
    return text.split(" ", 1)[0][:32] if text else "error"
