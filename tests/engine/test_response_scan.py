"""The upstream response head as the parser callback sorts it and scan_response reads it."""

from __future__ import annotations

from bastion.engine.headers import (
    REQUEST_NAMES,
    RESPONSE_REWRITTEN,
    field_bytes,
    response_name_table,
    scan_response,
)

SKIP = RESPONSE_REWRITTEN | {b"x-request-id"}


def sort(fields: list[tuple[bytes, bytes]]) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    """What UpstreamConnection.on_header does with each field."""
    parts: list[bytes] = [b""]
    special: list[tuple[bytes, bytes]] = []
    for name, value in fields:
        name = name.lower()
        if name in SKIP:
            special.append((name, value))
        else:
            parts += (name, b": ", value, b"\r\n")
    return parts, special


def test_typical_head_keeps_fields_and_reads_framing() -> None:
    parts, special = sort(
        [
            (b"Server", b"nginx"),
            (b"Date", b"today"),
            (b"Content-Length", b"2"),
            (b"Connection", b"keep-alive"),
            (b"X-Request-Id", b"spoofed"),
        ]
    )
    scan = scan_response(parts, special, SKIP, upgrade=False)
    assert b"".join(scan.parts[1:]) == b"date: today\r\n"
    assert scan.length == b"2"
    assert not scan.chunked
    assert not scan.other_coding
    assert not scan.close
    assert not scan.nosniff


def test_nosniff_is_found_by_name_only() -> None:
    parts, special = sort([(b"Vary", b"x-content-type-options")])
    assert not scan_response(parts, special, SKIP, upgrade=False).nosniff
    parts, special = sort([(b"X-Content-Type-Options", b"nosniff")])
    assert scan_response(parts, special, SKIP, upgrade=False).nosniff


def test_fields_named_by_connection_are_dropped() -> None:
    parts, special = sort(
        [
            (b"X-Private", b"a"),
            (b"Connection", b"close, X-Private"),
            (b"X-Kept", b"b"),
            (b"Transfer-Encoding", b"gzip, chunked"),
        ]
    )
    scan = scan_response(parts, special, SKIP, upgrade=False)
    assert b"".join(scan.parts[1:]) == b"x-kept: b\r\n"
    assert scan.close
    assert scan.other_coding
    assert not scan.chunked
    assert scan.pairs() == [(b"x-kept", b"b")]


def test_upgrade_keeps_connection_and_upgrade() -> None:
    parts, special = sort([(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")])
    scan = scan_response(parts, special, SKIP, upgrade=True)
    assert b"".join(scan.parts[1:]) == b"upgrade: websocket\r\nconnection: Upgrade\r\n"


def test_field_bytes_counts_every_field() -> None:
    parts, special = sort([(b"A", b"bc"), (b"Server", b"x")])
    assert field_bytes(parts, special) == len(b"a: bc\r\n") + len(b"server: x\r\n")


def test_field_name_tables_sort_as_lower_and_skip_would() -> None:
    """UpstreamConnection.on_header looks common spellings up instead of calling lower():
    every entry must give what lower() and the skip set give."""
    table = response_name_table(SKIP)
    for raw, (lowered, special) in table.items():
        assert lowered == raw.lower()
        assert special == (raw.lower() in SKIP)
    assert table[b"Content-Length"] == (b"content-length", True)
    assert table[b"X-Request-ID"] == (b"x-request-id", True)
    assert table[b"Date"] == (b"date", False)
    assert b"cOnTeNt-LeNgTh" not in table  # any other spelling takes the lower() path
    for raw, lowered in REQUEST_NAMES.items():
        assert lowered == raw.lower()


def test_connection_values_read_alike_in_any_spelling() -> None:
    for value in (b"keep-alive", b"Keep-Alive", b"KEEP-ALIVE", b"close", b"Close", b"cLoSe"):
        parts, special = sort([(b"Connection", value), (b"Date", b"today")])
        scan = scan_response(parts, special, SKIP, upgrade=False)
        assert scan.close == (value.lower() == b"close")
        assert b"".join(scan.parts[1:]) == b"date: today\r\n"
    parts, special = sort([(b"Connection", b"Close, Date"), (b"Date", b"today")])
    scan = scan_response(parts, special, SKIP, upgrade=False)
    assert scan.close
    assert scan.parts == [b""]  # the field the Connection header named is withheld
