"""A credential in the Host header must not reach the access line's ``url.domain``.

Before, the access line wrote the host name as it was: the gateway accepts any RFC 3986
reg-name (``_``, ``.`` and ``=`` included) and lower-cases it, so ``Host: bst_<id>_<secret>``
put a bastion API key, or a ``token=...`` pair, in every sink in clear. Both formatters now
scrub the host like any other client text (the redactor's credential shapes), and the gateway
test plants such a Host among its secrets (tests/observability/test_redaction_gateway.py).
"""

from __future__ import annotations

import io

import orjson
import pytest

from bastion.observability.ecs import AccessRecord
from bastion.observability.redact import REDACTED
from bastion.observability.sinks.stream import StreamSink
from bastion.observability.writer import EventWriter
from tests.observability.helpers import PLAIN_ACCESS, WRITERS, access_record

KEY_SECRET = "hs9hostsecret4720" + "h" * 20
HOSTS = {
    f"bst_hhhhhhhhhhhh_{KEY_SECRET}": KEY_SECRET,
    "token=tk9hostsecret4721abcdef.example": "tk9hostsecret4721abcdef",
    f"api.bst_abcdefgh_{KEY_SECRET}.example": KEY_SECRET,
}
CLEAN = ["api.example.com", "127.0.0.1", "[::1]", "a", "under_score.example"]


def record(host: str) -> AccessRecord:
    return access_record(PLAIN_ACCESS, host=host)


@pytest.mark.parametrize("native", WRITERS)
def test_access_line_host_secret_is_redacted(native: bool) -> None:
    stream = io.BytesIO()
    writer = EventWriter([StreamSink(stream)], native=native, flush_interval=0.01)
    for host in [*HOSTS, *CLEAN]:
        writer.access(record(host))
    writer.close()
    data = stream.getvalue()
    for secret in HOSTS.values():
        assert secret.encode() not in data
    domains = [orjson.loads(line)["url"]["domain"] for line in data.splitlines()]
    assert all(REDACTED in domain for domain in domains[: len(HOSTS)]), domains
    assert domains[len(HOSTS) :] == CLEAN  # names without a credential shape stay as they are
