"""A small real upstream for engine tests: records what reached it and answers by path.

It is a plain asyncio server with its own llhttp parser, so what it records is what actually
crossed the wire from the engine.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httptools
import orjson


@dataclass
class Seen:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body_bytes: int
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


@dataclass
class Upstream:
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    drop_reused: bool = False  # close instead of answering a second request on a connection
    server: asyncio.Server | None = None
    # path -> the whole response to send for it (head and body), written in the given pieces;
    # an empty piece closes the connection there
    replies: dict[str, list[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class _Conn(asyncio.Protocol):
    def __init__(self, up: Upstream) -> None:
        self.up = up
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.count = 0
        self.served = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.up.connections += 1

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._websocket(data[upgrade.args[0] :])

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = bytearray()
        self.count = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode().lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.count += len(body)
        if len(self.body) < 65536:
            self.body += body[: 65536 - len(self.body)]

    def on_message_complete(self) -> None:
        seen = Seen(
            self.parser.get_method().decode(),
            self.url.decode(),
            self.headers,
            self.count,
            bytes(self.body),
        )
        self.up.seen.append(seen)
        self.served += 1
        if self.up.drop_reused and self.served > 1:
            assert self.transport is not None
            self.transport.close()
            return
        if seen.header("upgrade") == "websocket":
            return
        asyncio.get_running_loop().create_task(self._answer(seen))

    def _websocket(self, rest: bytes) -> None:
        # Minimal tunnel check: answer 101, then echo raw bytes back reversed-free (plain echo).
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
            b"sec-websocket-accept: test\r\n\r\n"
        )
        self.data_received = self._echo  # type: ignore[method-assign]
        if rest:
            self._echo(rest)

    def _echo(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def _answer(self, seen: Seen) -> None:
        t = self.transport
        assert t is not None
        path, _, query = seen.target.partition("?")
        canned = self.up.replies.get(path)
        if canned is not None:
            for piece in canned:
                if not piece:
                    t.close()
                    return
                t.write(piece)
                await asyncio.sleep(0.005)
        elif path.startswith("/status/"):
            code = int(path.split("/")[2])
            body = b"stack trace: secret internals" if code >= 500 else b"status"
            t.write(
                b"HTTP/1.1 %d X\r\ncontent-length: %d\r\nserver: upstream/1.0\r\n\r\n%s"
                % (code, len(body), body)
            )
        elif path == "/slow":
            await asyncio.sleep(float(query or "1"))
            t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow")
        elif path == "/chunked":
            t.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for part in (b"hello ", b"chunked ", b"world"):
                t.write(b"%x\r\n%s\r\n" % (len(part), part))
                await asyncio.sleep(0.01)
            t.write(b"0\r\n\r\n")
        elif path == "/big":
            size = int(query)
            t.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
            t.write(b"x" * size)
        elif path == "/die":
            t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"y" * 10)
            await asyncio.sleep(0.05)
            t.close()
        elif path == "/die-chunked":
            t.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await asyncio.sleep(0.05)
            t.close()
        elif path == "/until-close":
            t.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
            t.close()
        elif path == "/hop":
            t.write(
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: x-private, keep-alive\r\n"
                b"x-private: a\r\nkeep-alive: timeout=5\r\nx-powered-by: php\r\nserver: up\r\n"
                b"x-kept: yes\r\n\r\nok"
            )
        else:
            body = orjson.dumps(
                {
                    "method": seen.method,
                    "target": seen.target,
                    "headers": seen.headers,
                    "body_bytes": seen.body_bytes,
                }
            )
            t.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"server: upstream/1.0\r\nx-powered-by: tests\r\n\r\n%s" % (len(body), body)
            )


async def start_upstream() -> Upstream:
    up = Upstream()
    loop = asyncio.get_running_loop()
    up.server = await loop.create_server(lambda: _Conn(up), "127.0.0.1", 0)
    up.port = up.server.sockets[0].getsockname()[1]
    return up
