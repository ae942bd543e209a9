"""A compressed request body, decompressed (boundedly) so that it can be inspected.

A ``Content-Encoding: gzip`` body is bytes no detector can read; if the guard skipped it, any
attack would pass compressed to an upstream that decompresses. So ``gzip`` and ``deflate`` are
decompressed up to a limit (a small compressed body may expand a thousandfold), and any other
coding is :class:`Uninspectable`: the guard refuses it in block mode.
"""

from __future__ import annotations

import zlib


class Uninspectable(Exception):
    """The body cannot be inspected: ``reason`` is ``encoding`` or ``size``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    decompressor = zlib.decompressobj(wbits)
    try:
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise Uninspectable("encoding") from exc
    if len(data) > limit or decompressor.unconsumed_tail:
        raise Uninspectable("size")
    return data


def decoded(body: bytes, content_encoding: str, limit: int) -> bytes:
    """``body`` without its ``content_encoding`` (``gzip``, ``x-gzip``, ``deflate``, ``identity``),
    at most ``limit`` bytes; :class:`Uninspectable` otherwise."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):  # the last coding listed was applied last
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            body = _inflate(body, 16 + zlib.MAX_WBITS, limit)
        elif coding == "deflate":
            # RFC 9110 deflate is the zlib format; some clients send raw deflate.
            try:
                body = _inflate(body, zlib.MAX_WBITS, limit)
            except Uninspectable as exc:
                if exc.reason == "size":
                    raise
                body = _inflate(body, -zlib.MAX_WBITS, limit)
        else:
            raise Uninspectable("encoding")
    return body
