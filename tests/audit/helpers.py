"""What the audit tests share: the documents in data/ and running one check by id."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bastion.audit.checks import default_registry
from bastion.audit.model import Finding, Outcome
from bastion.validation.document import load_document

DATA = Path(__file__).parent / "data"


def document(name: str) -> dict[str, Any]:
    return load_document(DATA / name)


def run_static(check_id: str, doc: Mapping[str, Any]) -> list[Finding]:
    entry = default_registry()[check_id]
    assert entry.static is not None
    return list(entry.static(doc))


def failures(findings: list[Finding]) -> dict[str, str]:
    """location -> message of every failed finding."""
    return {
        e.location: f.message for f in findings if f.outcome is Outcome.FAIL for e in f.evidence
    }


def outcomes(findings: list[Finding]) -> set[Outcome]:
    return {f.outcome for f in findings}
