"""The score of each practice and the overall grade (the formula docs/audit.md documents).

Per check, one outcome: ``fail`` if any of its findings failed, else ``error``, ``pass`` or
``skip``. Each check weighs by its severity (critical 10, high 6, medium 3, low 1, info 0).

    practice score = 100 x (weight of passed checks) / (weight of passed + failed checks)

rounded to a whole number; checks that were skipped or could not complete do not count, and a
practice with nothing counted has no score. The overall score is the mean of the practices that
have one. The grade follows the overall score (A+ >= 97, A >= 90, B >= 80, C >= 70, D >= 60,
else F), capped by the worst failure: a failed critical check caps it at C, a failed high at B,
and A+ needs no failed check above low. Baselines and suppressions do not change the grade: they
decide what fails a CI run, not how secure the API is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from bastion.audit.model import CheckInfo, Finding, Outcome, Practice, Severity
from bastion.audit.runner import outcome_of

WEIGHTS = {
    Severity.CRITICAL: 10,
    Severity.HIGH: 6,
    Severity.MEDIUM: 3,
    Severity.LOW: 1,
    Severity.INFO: 0,
}
GRADES = ((97, "A+"), (90, "A"), (80, "B"), (70, "C"), (60, "D"), (0, "F"))
_CAPS = {Severity.CRITICAL: "C", Severity.HIGH: "B", Severity.MEDIUM: "A"}
_ORDER = [grade for _, grade in GRADES]


@dataclass(frozen=True, slots=True)
class PracticeScore:
    practice: Practice
    score: int | None  # None: nothing in this practice could be judged
    passed: int
    failed: int
    skipped: int
    errored: int


@dataclass(frozen=True, slots=True)
class Scorecard:
    practices: tuple[PracticeScore, ...]
    score: int | None
    grade: str  # "A+" .. "F", or "n/a" when nothing could be judged
    worst: Severity | None  # the most severe failed check


def check_outcomes(findings: Sequence[Finding]) -> dict[str, tuple[CheckInfo, Outcome]]:
    by_check: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_check[finding.check.id].append(finding)
    return {cid: (group[0].check, outcome_of(group)) for cid, group in by_check.items()}


def grade_for(score: int, worst: Severity | None) -> str:
    grade = next(letter for floor, letter in GRADES if score >= floor)
    cap = _CAPS.get(worst) if worst is not None else None
    if cap is not None and _ORDER.index(grade) < _ORDER.index(cap):
        grade = cap
    return grade


def score(findings: Sequence[Finding]) -> Scorecard:
    outcomes = check_outcomes(findings)
    practices: list[PracticeScore] = []
    worst: Severity | None = None
    for practice in Practice:
        counts = {o: 0 for o in Outcome}
        earned = possible = 0
        for info, outcome in outcomes.values():
            if info.practice is not practice:
                continue
            counts[outcome] += 1
            weight = WEIGHTS[info.severity]
            if outcome in (Outcome.PASS, Outcome.FAIL):
                possible += weight
                earned += weight if outcome is Outcome.PASS else 0
            if outcome is Outcome.FAIL and (worst is None or info.severity > worst):
                worst = info.severity
        value = round(100 * earned / possible) if possible else None
        practices.append(
            PracticeScore(
                practice,
                value,
                counts[Outcome.PASS],
                counts[Outcome.FAIL],
                counts[Outcome.SKIP],
                counts[Outcome.ERROR],
            )
        )
    judged = [p.score for p in practices if p.score is not None]
    overall = round(sum(judged) / len(judged)) if judged else None
    grade = grade_for(overall, worst) if overall is not None else "n/a"
    return Scorecard(tuple(practices), overall, grade, worst)
