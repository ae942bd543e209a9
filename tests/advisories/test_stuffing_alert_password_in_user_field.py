"""A password typed into the user-name field of a login must not reach a credential-stuffing
alert: the accounts one source tried are shown masked (their first characters and length).

Before, the alert listed every attempted user name as it was typed; a failed Basic login whose
user field held a password put that password in the alert event, the webhook, Slack and email.
"""

from __future__ import annotations

import base64

import orjson

from bastion.observability.detect.guard import MonitorGuard
from bastion.observability.detect.stuffing import masked
from bastion.observability.ecs import security_line
from bastion.observability.redact import Redactor
from bastion.pipeline.request import ClientAddress, Headers, Request
from bastion.pipeline.routing import ROUTE, Route
from tests.observability.detect.helpers import harness

PASSWORDS = [f"Tr0ub4dor&{i}horse" for i in range(10)]


def login(user: str) -> Request:
    credentials = base64.b64encode(f"{user}:x".encode())
    made = Request(
        method="POST",
        path="/login",
        query="",
        headers=Headers([(b"authorization", b"Basic " + credentials)]),
        client=ClientAddress("198.51.100.30", 5000),
    )
    made.state[ROUTE] = Route(name="login")
    return made


def test_stuffing_alert_never_shows_a_password_typed_as_a_user_name() -> None:
    h = harness()
    guard = MonitorGuard(h.monitor, login_routes=frozenset({"login"}))
    for password in PASSWORDS:
        guard.on_complete(login(password), 401, 80, 0.01)
    [alert] = h.of("credential_stuffing")
    assert alert.evidence["distinct"] == 10
    assert alert.evidence["accounts"] == [masked(p) for p in sorted(PASSWORDS)]
    line, _ = security_line(h.events.events[-1], Redactor())
    for text in (str(alert.document()), alert.summary, line.decode()):
        for password in PASSWORDS:
            assert password not in text
            assert password[:4] not in text
    assert orjson.loads(line)["bastion"]["fields"]["accounts"][0] == "Tr…(16)"


def test_masked_keeps_at_most_two_characters_and_the_length() -> None:
    assert masked("correct-horse-battery") == "co…(21)"
    assert masked("victim3") == "v…(7)"
    assert masked("abc") == "…(3)"
    assert masked("") == "…(0)"
