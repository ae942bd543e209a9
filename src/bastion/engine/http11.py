"""HTTP/1.1 rules llhttp leaves to its caller, as small pure functions over raw bytes.

llhttp (strict mode, as httptools builds it) already refuses Content-Length together with
Transfer-Encoding, duplicate or non-numeric Content-Length, obsolete line folding, bare CR/LF,
control characters in field values, invalid field names and bad chunk sizes (the advisories tests
pin each of these). It lets through, and this module refuses: request targets that are not in
origin form, dot segments (also percent-encoded), fragments, Transfer-Encoding other than exactly
``chunked``, Transfer-Encoding on HTTP/1.0, HTTP versions other than 1.0 and 1.1, missing or
repeated or malformed Host, and unknown expectations.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Final

import httptools

from bastion.errors import ProtocolError
from bastion.pipeline.paths import path_problem

if TYPE_CHECKING:
    from bastion.engine.exchange import Exchange

_HOST: Final = re.compile(rb"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::[0-9]{1,5})?$")
_SUSPECT: Final = re.compile(rb"[.%#\\]")  # a target without these needs no closer look


class Refusal(ProtocolError):
    """A request the engine refuses before any guard or upstream sees it."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.refusal_status = status
        self.refusal_code = code
        self.request_id = ""  # set when refused, so the answer and the event share it


def refuse(status: int, code: str, detail: str) -> Refusal:
    return Refusal(status, code, detail)


def split_target(url: bytes) -> tuple[bytes, bytes]:
    """``(path, query)`` of an origin-form target, or a :class:`Refusal`.

    Absolute-form, authority-form and asterisk-form targets are refused: a gateway in front of an
    API has no use for them, and each is a known route to request-routing confusion.
    """
    if url[:1] == b"/" and url[1:2] != b"/" and not _SUSPECT.search(url):
        path, _, query = url.partition(b"?")
        return path, query
    if not url.startswith(b"/") or url.startswith(b"//"):
        raise refuse(400, "request.invalid_target", "The request target must be an absolute path.")
    if b"#" in url:
        raise refuse(400, "request.invalid_target", "The request target must not hold a fragment.")
    path, _, query = url.partition(b"?")
    check_path(path)
    return path, query


def check_path(path: bytes) -> None:
    """Refuse the paths :func:`bastion.pipeline.paths.path_problem` names."""
    problem = path_problem(path)
    if problem is not None:
        raise refuse(400, "request.invalid_path", problem)


def check_host(value: bytes) -> str:
    """The host name (lower case, without port) of a valid Host value."""
    value = value.strip()
    if not value or not _HOST.match(value):
        raise refuse(400, "request.invalid_host", "The Host header is not a valid authority.")
    text = value.decode("ascii").lower()
    if text.startswith("["):
        return text[: text.index("]") + 1]
    return text.partition(":")[0]


def inspect_fields(exchange: Exchange, version: str) -> bytes | None:
    """Framing and intent from the request's fields (set on ``exchange``); its Host value.

    Refuses several Host fields, Transfer-Encoding other than chunked (or on HTTP/1.0) and
    expectations other than ``100-continue``. llhttp has already refused conflicting or invalid
    Content-Length fields, so the one present is a plain decimal number.
    """
    host: bytes | None = None
    for name, value in exchange.headers:
        if name == b"host":
            if host is not None:
                raise refuse(400, "request.invalid_host", "The request has several Host fields.")
            host = value
        elif name == b"transfer-encoding":
            check_transfer_encoding(value, version)
            exchange.chunked = True
        elif name == b"content-length":
            # llhttp checked the digits; leading zeros are valid (1*DIGIT) but would make a long
            # value's int() fail (Python caps str-to-int at 4300 digits) and answer 500.
            digits = value.strip().lstrip(b"0") or b"0"
            if len(digits) > 18:
                raise refuse(413, "request.body_too_large", "The request body exceeds the limit.")
            exchange.content_length = int(digits)
        elif name == b"expect":
            if value.strip().lower() != b"100-continue":
                raise refuse(417, "request.expectation_failed", "Only 100-continue is served.")
            exchange.expect_continue = version == "1.1"
        elif name == b"upgrade":
            exchange.upgrade = value.strip().lower() == b"websocket"
    return host


def check_transfer_encoding(value: bytes, http_version: str) -> None:
    if http_version == "1.0":
        raise refuse(400, "request.invalid_framing", "Transfer-Encoding is not valid in HTTP/1.0.")
    if value.strip().lower() != b"chunked":
        raise refuse(
            501,
            "request.unsupported_transfer_coding",
            "Only the chunked transfer coding is served.",
        )


_STATUS_LINES: Final[dict[int, bytes]] = {}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 200 OK\\r\\n``, built once per status code."""
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")
    return line


def parser_refusal(exc: Exception) -> Refusal:
    """The refusal for an error llhttp raised (its messages are not shown to the client)."""
    message = str(exc)
    if "invalid http version" in message.lower():
        return refuse(505, "request.version_not_supported", "Only HTTP/1.1 and 1.0 are served.")
    if isinstance(exc, httptools.HttpParserInvalidMethodError):
        return refuse(501, "request.method_not_implemented", "The request method is not served.")
    return refuse(400, "request.malformed", "The request is not valid HTTP/1.1.")
