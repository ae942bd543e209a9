"""The read-only request view every guard inspects, in gateway and middleware mode alike.

Header names arrive lower-cased (the engine lower-cases them while parsing; ASGI already does) and
values stay raw bytes until a guard asks for one, so a request that no guard looks at costs no
decoding at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar, cast, overload

T = TypeVar("T")

RawHeaders = Sequence[tuple[bytes, bytes]]


class Headers:
    """Case-insensitive, read-only view over raw ``(name, value)`` pairs; names lower-case."""

    __slots__ = ("_index", "raw")

    def __init__(self, raw: RawHeaders) -> None:
        # A list (the engine's own, or a copy of an ASGI server's tuple), so that guards that
        # scan the raw fields run compiled list loops rather than the generic iterator protocol.
        self.raw: list[tuple[bytes, bytes]] = raw if type(raw) is list else list(raw)
        self._index: dict[str, list[str]] | None = None

    def _build(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for name, value in self.raw:
            index.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
        self._index = index
        return index

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (lower-case), or ``default``."""
        values = (self._index if self._index is not None else self._build()).get(name)
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        values = (self._index if self._index is not None else self._build()).get(name)
        return list(values) if values else []

    def count(self, name: str) -> int:
        values = (self._index if self._index is not None else self._build()).get(name)
        return len(values) if values else 0

    def __contains__(self, name: object) -> bool:
        index = self._index if self._index is not None else self._build()
        return name in index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for name, value in self.raw:
            yield name.decode("latin-1"), value.decode("latin-1")

    def __len__(self) -> int:
        return len(self.raw)

    def __repr__(self) -> str:
        return f"Headers({len(self.raw)} fields)"


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """An IP address and port. ``ip`` is text (IPv4 dotted or IPv6 compressed)."""

    ip: str
    port: int


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """What the TLS handshake established, when the request came over TLS."""

    version: str
    cipher: str
    server_name: str | None = None
    alpn: str | None = None
    client_cert_der: bytes | None = None


_SLOTS: Final = 16
"""State keys made first (the built-in ones, at import) have a slot of their own in every
:class:`State`; later ones share a dictionary."""
_MISSING: Final = object()
_EMPTY: Final[list[object]] = [_MISSING] * _SLOTS  # copied (one slice) per request
_made = [0]  # how many keys exist


class StateKey(Generic[T]):
    """A typed key into :class:`State`, so guards share values without stringly-typed casts.

    ``IDENTITY = StateKey[Identity]("identity")`` then ``request.state[IDENTITY] = identity``.
    """

    __slots__ = ("index", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.index = _made[0]
        _made[0] += 1

    def __repr__(self) -> str:
        return f"StateKey({self.name!r})"


class State:
    """Per-request values shared along the guard chain, keyed by :class:`StateKey`.

    A list indexed by the key's number (a few stores and loads per request, no hashing), with a
    dictionary for keys beyond the first :data:`_SLOTS`."""

    __slots__ = ("_extra", "_slots")

    def __init__(self) -> None:
        self._slots: list[object] = _EMPTY[:]
        self._extra: dict[StateKey[Any], Any] | None = None

    def __getitem__(self, key: StateKey[T]) -> T:
        index = key.index
        if index < _SLOTS:
            value = self._slots[index]
            if value is _MISSING:
                raise KeyError(key)
            return cast(T, value)
        extra = self._extra
        if extra is None:
            raise KeyError(key)
        return cast(T, extra[key])

    def __setitem__(self, key: StateKey[T], value: T) -> None:
        index = key.index
        if index < _SLOTS:
            self._slots[index] = value
            return
        extra = self._extra
        if extra is None:
            extra = self._extra = {}
        extra[key] = value

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, StateKey):
            return False
        index = key.index
        if index < _SLOTS:
            return self._slots[index] is not _MISSING
        return self._extra is not None and key in self._extra

    @overload
    def get(self, key: StateKey[T]) -> T | None: ...
    @overload
    def get(self, key: StateKey[T], default: T) -> T: ...
    def get(self, key: StateKey[T], default: T | None = None) -> T | None:
        index = key.index
        if index < _SLOTS:
            value = self._slots[index]
            return default if value is _MISSING else cast(T, value)
        extra = self._extra
        if extra is None:
            return default
        return cast("T | None", extra.get(key, default))


class Request:
    """One HTTP request as guards see it.

    ``path`` is the path component exactly as received (percent-encoded, never containing dot
    segments: the engine refuses those), ``query`` the raw query string without ``?``. ``client``
    is the address derived from trusted proxies, ``peer`` the TCP peer itself. ``body`` is set only
    when some guard in the chain declared ``requires_body``.
    """

    __slots__ = (
        "body",
        "client",
        "headers",
        "host",
        "http_version",
        "method",
        "path",
        "peer",
        "query",
        "request_id",
        "scheme",
        "state",
        "tls",
    )

    def __init__(
        self,
        *,
        method: str,
        path: str,
        query: str,
        headers: Headers,
        client: ClientAddress,
        peer: ClientAddress | None = None,
        scheme: str = "http",
        host: str = "",
        http_version: str = "1.1",
        tls: TLSInfo | None = None,
        request_id: str = "",
        body: bytes | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.client = client
        self.peer = peer if peer is not None else client
        self.scheme = scheme
        self.host = host
        self.http_version = http_version
        self.tls = tls
        self.request_id = request_id
        self.body = body
        self.state = State()

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path} id={self.request_id}>"
