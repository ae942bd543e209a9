"""The placement guard's fast path (``clean_query``) never lets through a query that the full
check (``query_credential``) refuses: compared on hand-picked and generated queries."""

from __future__ import annotations

import random

import pytest

from bastion.auth.keys.format import generate
from bastion.auth.placement import CredentialPlacement, query_credential
from bastion.config.loader import build_config
from bastion.pipeline.decisions import ALLOW, Deny
from bastion.pipeline.request import ClientAddress, Headers, Request

KEY = generate().secret
JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
HAND_PICKED = [
    "page=2",
    "page=2&sort=name",
    "monkey=1",  # contains a name: looked at closely, found clean
    "Api-Key=x",
    "API.KEY=x",
    "a=1&ACCESS_token=x",
    "x=1;toKen=2",
    "api%5Fkey=x",
    "q=a+b",
    f"q={KEY}",
    f"q={JWT}",
    "k\u00e9y=1",  # non-ASCII: the long way
    "key[]=1",
    " key =1",
    "x-api-key=1",
    "clientsecret",
    "&&",
    "=",
]
PIECES = [
    "key", "KEY", "Key", "api", "_", "-", ".", "token", "tok", "en", "page", "=", "&", ";",
    "1", "x", "[]", " ", "client", "secret", "access", "id", "refresh", "bst_", "eyJ", "%5F",
    "+", "\u00e9", "monk", "ey",
]  # fmt: skip


@pytest.fixture
def guard() -> CredentialPlacement:
    return CredentialPlacement(build_config({}, "test").auth)


def full(guard: CredentialPlacement, query: str) -> str | None:
    return query_credential(query, guard.names, guard.pattern)


@pytest.mark.parametrize("query", HAND_PICKED)
def test_a_clean_verdict_agrees_with_the_full_check(guard: CredentialPlacement, query: str) -> None:
    if guard.clean_query(query):
        assert full(guard, query) is None


def test_the_fast_path_takes_the_common_queries(guard: CredentialPlacement) -> None:
    for query in ("page=2", "page=2&sort=name&limit=50", "from=2026-01-01&to=2026-02-01"):
        assert guard.clean_query(query), query
    for query in ("api_key=x", "Api-Key=x", "a=1;TOKEN=2", "q=" + KEY, "q=" + JWT, "api%5Fkey=1"):
        assert not guard.clean_query(query), query
        assert full(guard, query) is not None, query


def test_generated_queries_never_pass_the_fast_path_wrongly(guard: CredentialPlacement) -> None:
    rng = random.Random(20261128)
    clean = refused = 0
    for _ in range(20_000):
        query = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 8)))
        found = full(guard, query)
        if guard.clean_query(query):
            clean += 1
            assert found is None, query
        elif found is not None:
            refused += 1
    assert clean > 1000  # both verdicts were exercised
    assert refused > 1000


def test_configured_names_join_the_fast_path() -> None:
    config = build_config({"auth": {"query_credential_names": ["sig"]}}, "test")
    guard = CredentialPlacement(config.auth)
    assert not guard.clean_query("S-I-G=1")
    assert full(guard, "S-I-G=1") == "sig"
    assert guard.clean_query("token=1")  # no longer a configured name


def request(query: str) -> Request:
    return Request(
        method="GET",
        path="/orders",
        query=query,
        headers=Headers([]),
        client=ClientAddress("203.0.113.7", 4000),
    )


def test_clean_queries_are_remembered_and_credentials_never(guard: CredentialPlacement) -> None:
    assert guard.check(request("page=2")) is ALLOW
    assert "page=2" in guard._clean  # the next "page=2" is one set lookup
    assert guard.check(request("page=2")) is ALLOW
    for _ in range(2):  # refused every time, never remembered
        denied = guard.check(request("api_key=" + KEY))
        assert isinstance(denied, Deny)
        assert denied.code == "auth.credentials_in_query"
        assert "api_key=" + KEY not in guard._clean
    guard.check(request("monkey=1"))  # clean, but only after the full check: not remembered
    assert "monkey=1" not in guard._clean


def test_the_memo_is_bounded_in_entries_and_length(guard: CredentialPlacement) -> None:
    guard.check(request("q=" + "x" * 200))
    assert not guard._clean  # long queries are scanned every time
    for page in range(1000):
        assert guard.check(request(f"page={page}")) is ALLOW
        assert len(guard._clean) <= 256
