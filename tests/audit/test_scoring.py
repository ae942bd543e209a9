"""The documented score formula and grade caps (docs/audit.md, "Scoring")."""

from __future__ import annotations

import datetime as dt

import pytest

from bastion.audit.model import (
    CheckInfo,
    Evidence,
    Finding,
    Kind,
    Outcome,
    Practice,
    Severity,
    errored,
    failed,
    passed,
    skipped,
)
from bastion.audit.scoring import grade_for, score
from bastion.audit.triage import Suppression, triage


def check(name: str, severity: Severity, practice: Practice = Practice.VALIDATION) -> CheckInfo:
    return CheckInfo(f"static.{name}", name, practice, severity, Kind.STATIC, "c")


def test_practice_score_weighs_checks_by_severity() -> None:
    findings = [
        passed(check("a", Severity.CRITICAL), "ok"),  # 10
        failed(check("b", Severity.HIGH), "bad", Evidence("x", "/b")),  # 6
        failed(check("b", Severity.HIGH), "bad", Evidence("x", "/c")),  # same check: counted once
        passed(check("c", Severity.MEDIUM), "ok"),  # 3
        passed(check("d", Severity.LOW), "ok"),  # 1
        skipped(check("e", Severity.CRITICAL), "n/a"),  # not counted
        errored(check("f", Severity.CRITICAL), "broke"),  # not counted
    ]
    card = score(findings)
    validation = next(p for p in card.practices if p.practice is Practice.VALIDATION)
    assert validation.score == round(100 * 14 / 20)
    assert (validation.passed, validation.failed, validation.skipped, validation.errored) == (
        3, 1, 1, 1,
    )  # fmt: skip
    assert card.score == 70  # the only practice with a score
    assert card.worst is Severity.HIGH
    assert card.grade == "C"


def test_practices_without_counted_checks_have_no_score_and_do_not_count() -> None:
    findings = [
        passed(check("a", Severity.HIGH, Practice.AUTHENTICATION), "ok"),
        failed(check("b", Severity.LOW, Practice.ENCRYPTION), "bad"),
        passed(check("c", Severity.HIGH, Practice.ENCRYPTION), "ok"),
    ]
    card = score(findings)
    scores = {p.practice: p.score for p in card.practices}
    assert scores[Practice.AUTHENTICATION] == 100
    assert scores[Practice.ENCRYPTION] == round(100 * 6 / 7)
    assert scores[Practice.LOGGING] is None
    assert card.score == round((100 + 86) / 2)
    assert card.grade == "A"  # 93: A (A+ needs 97)


@pytest.mark.parametrize(
    ("value", "worst", "grade"),
    [
        (100, None, "A+"),
        (97, Severity.LOW, "A+"),
        (99, Severity.MEDIUM, "A"),
        (99, Severity.HIGH, "B"),
        (99, Severity.CRITICAL, "C"),
        (92, None, "A"),
        (85, None, "B"),
        (75, Severity.CRITICAL, "C"),
        (65, None, "D"),
        (59, None, "F"),
        (40, Severity.CRITICAL, "F"),
    ],
)
def test_grades_and_caps(value: int, worst: Severity | None, grade: str) -> None:
    assert grade_for(value, worst) == grade


def test_nothing_judged_is_not_a_grade() -> None:
    card = score([skipped(check("a", Severity.HIGH), "no document")])
    assert card.score is None
    assert card.grade == "n/a"


def test_suppressions_and_baselines_do_not_change_the_score() -> None:
    bad = failed(check("b", Severity.HIGH), "bad", Evidence("x", "/b"))
    findings: list[Finding] = [passed(check("a", Severity.HIGH), "ok"), bad]
    rule = Suppression(check=bad.check.id, reason="pilot", expires=dt.date(2999, 1, 1))
    triaged = triage(findings, frozenset(), [rule])
    assert triaged.statuses[bad.fingerprint].state == "suppressed"
    assert score(findings).score == 50


def test_a_suppression_applies_through_its_expiry_day_and_not_after() -> None:
    bad = failed(check("b", Severity.HIGH), "bad", Evidence("x", "/b"))
    rule = Suppression(check=bad.check.id, reason="pilot", expires=dt.date(2030, 6, 1))
    on_the_day = triage([bad], suppressions=[rule], today=dt.date(2030, 6, 1))
    after = triage([bad], suppressions=[rule], today=dt.date(2030, 6, 2))
    assert on_the_day.statuses[bad.fingerprint].state == "suppressed"
    assert after.statuses[bad.fingerprint].state == "new"
    assert after.expired == (rule,)


def test_fingerprints_ignore_messages_and_follow_locations() -> None:
    a = failed(check("b", Severity.HIGH), "answered in 12 ms", Evidence("x", "/b"))
    b = failed(check("b", Severity.HIGH), "answered in 40 ms", Evidence("y", "/b"))
    c = failed(check("b", Severity.HIGH), "answered in 12 ms", Evidence("x", "/c"))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert {f.outcome for f in (a, b, c)} == {Outcome.FAIL}
