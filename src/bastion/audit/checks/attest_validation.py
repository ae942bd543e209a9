"""Attestation of practice 3, validation: is the OpenAPI document enforced, strictly, and are
bodies bounded? (What attestation is: :mod:`bastion.audit.checks.attest_common`.)"""

from __future__ import annotations

from bastion.audit.checks.attest_common import attestation_info
from bastion.audit.checks.verdict import verdict
from bastion.audit.model import Finding, Practice, Registry, Severity, skipped
from bastion.config.models import BastionConfig

_BODY_LIMIT = 10 * 1024 * 1024


OPENAPI_VALIDATION = attestation_info(
    "attest.openapi-validation",
    "Requests are validated against the OpenAPI document",
    Practice.VALIDATION,
    Severity.HIGH,
    "openapi is set and enforced: validation.enabled is true, validation.mode is block and no"
    " route is passed through unvalidated (on bastion versions with a validation section).",
    "Validation at the edge refuses malformed and undeclared input before any application code"
    " parses it.",
    "OWASP API3:2023",
    "OWASP API4:2023",
    "ASVS 5.0 V2 (Validation and Business Logic)",
)

VALIDATION_STRICT = attestation_info(
    "attest.validation-strict",
    "Undocumented parameters and properties are refused",
    Practice.VALIDATION,
    Severity.MEDIUM,
    "validation.strict is true (where this bastion version has a validation section).",
    "Strict mode refuses undocumented query parameters and body properties everywhere, which"
    " closes mass assignment and parameter pollution even where a schema forgot"
    " additionalProperties: false.",
    "OWASP API3:2023",
    "OWASP API6:2023",
    "ASVS 5.0 V2 (Validation and Business Logic)",
)

BODY_LIMIT = attestation_info(
    "attest.body-limit",
    "Request bodies are size-limited",
    Practice.VALIDATION,
    Severity.LOW,
    f"limits.max_body_bytes is at most {_BODY_LIMIT} bytes (10 MiB).",
    "Large bodies cost memory and parsing time before any validation can refuse them.",
    "OWASP API4:2023",
)


def openapi_validation(config: BastionConfig) -> list[Finding]:
    problems: list[tuple[str, str]] = []
    validation = getattr(config, "validation", None)
    if config.openapi is None:
        problems.append(("openapi", "no OpenAPI document is enforced"))
    elif validation is not None and not validation.enabled:
        problems.append(("validation.enabled", "the document is loaded but not enforced"))
    elif validation is not None and validation.mode != "block":
        problems.append(("validation.mode", f"mode {validation.mode}: violations go through"))
    if validation is not None and validation.enabled:
        problems += [
            (f"validation.pass_through[{index}]", f"route {name} is forwarded unvalidated")
            for index, name in enumerate(validation.pass_through)
        ]
    return verdict(OPENAPI_VALIDATION, problems, f"requests are validated against {config.openapi}")


def validation_strict(config: BastionConfig) -> list[Finding]:
    validation = getattr(config, "validation", None)
    if validation is None:
        return [skipped(VALIDATION_STRICT, "this bastion version has no validation section")]
    if config.openapi is None or not validation.enabled:
        return [skipped(VALIDATION_STRICT, "validation is off (see attest.openapi-validation)")]
    problems = []
    if not validation.strict:
        problems.append(("validation.strict", "undocumented parameters and properties pass"))
    return verdict(VALIDATION_STRICT, problems, "strict mode refuses anything undocumented")


def body_limit(config: BastionConfig) -> list[Finding]:
    limit = config.limits.max_body_bytes
    problems = []
    if limit > _BODY_LIMIT:
        problems.append(("limits.max_body_bytes", f"bodies up to {limit} bytes are buffered"))
    return verdict(BODY_LIMIT, problems, f"bodies are limited to {limit} bytes")


def register(registry: Registry) -> None:
    registry.add_attestation(OPENAPI_VALIDATION, openapi_validation)
    registry.add_attestation(VALIDATION_STRICT, validation_strict)
    registry.add_attestation(BODY_LIMIT, body_limit)
