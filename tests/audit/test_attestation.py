"""Every attestation check fires on a weak bastion configuration and stays quiet on a strong one.

Configurations go through bastion's own loader, as ``--gateway-config FILE`` does. The
``validation`` and ``monitoring`` sections exist only in some bastion versions: where the loader
knows them they are loaded for real; where it does not, a stand-in with the same fields and
defaults takes their place, so the checks that read them are exercised either way.
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from bastion.audit.checks import default_registry
from bastion.audit.model import Kind, Outcome
from bastion.config.loader import build_config, load_config
from bastion.config.models import BastionConfig

from .helpers import DATA

ATTEST_IDS = sorted(e.info.id for e in default_registry() if e.info.kind is Kind.ATTESTATION)

STRONG: dict[str, Any] = {
    "listen": "0.0.0.0:8443",
    "openapi": str(DATA / "strong.yaml"),
    "auth": {"default": "required"},
    "routes": [
        {"name": "api", "upstream": "https://api.internal:8443"},
        {"name": "local", "upstream": "http://127.0.0.1:9000", "path_prefix": "/local"},
    ],
    "rate_limit": {"policies": [{"name": "per-ip", "rate": "100/minute"}]},
    "tls": {"enabled": True},
    "validation": {"enabled": True, "strict": True},
    "monitoring": {"enabled": True, "alerts": {"sinks": [{"type": "command", "argv": ["true"]}]}},
}
# the defaults of the sections some bastion versions lack (their stand-ins start from these)
SECTIONS: dict[str, dict[str, Any]] = {
    "validation": {"enabled": False, "mode": "block", "strict": False, "pass_through": ()},
    "monitoring": {"enabled": False, "alerts": {"sinks": ()}},
}

# check id -> (overrides laid over STRONG, the location that must fail)
WEAK: dict[str, list[tuple[dict[str, Any], str]]] = {
    "attest.auth-required": [
        ({"auth": {"default": "public"}}, "auth.default"),
        ({"auth": {"enabled": False}}, "auth.enabled"),
        (
            {
                "routes": [
                    {"name": "api", "upstream": "https://a:1", "auth": {"require": "optional"}}
                ]
            },
            "routes[api].auth.require",
        ),
    ],
    "attest.query-credentials-refused": [
        ({"auth": {"query_credential_names": []}}, "auth.query_credential_names"),
    ],
    "attest.credentials-not-forwarded": [
        ({"auth": {"forward_credentials": True}}, "auth.forward_credentials"),
    ],
    "attest.events-enabled": [({"events": {"sink": "none"}}, "events.sink")],
    "attest.monitoring-alerts": [
        ({"monitoring": {"enabled": False}}, "monitoring.enabled"),
        ({"monitoring": {"alerts": {"sinks": []}}}, "monitoring.alerts.sinks"),
    ],
    "attest.validation-strict": [({"validation": {"strict": False}}, "validation.strict")],
    "attest.upstream-errors-masked": [
        ({"responses": {"mask_upstream_errors": False}}, "responses.mask_upstream_errors"),
    ],
    "attest.admin-private": [
        ({"admin": {"listen": "0.0.0.0:9901"}}, "admin.listen"),
        ({"admin": {"listen": "52.1.2.3:9901"}}, "admin.listen"),
    ],
    "attest.openapi-validation": [
        ({"openapi": None, "validation": {"enabled": False}}, "openapi"),
        ({"validation": {"enabled": False}}, "validation.enabled"),
        ({"validation": {"mode": "monitor"}}, "validation.mode"),
        ({"validation": {"pass_through": ["local"]}}, "validation.pass_through[0]"),
    ],
    "attest.body-limit": [({"limits": {"max_body_bytes": "100MiB"}}, "limits.max_body_bytes")],
    "attest.rate-limit-policies": [
        ({"rate_limit": {"policies": []}}, "rate_limit.policies"),
        (
            {
                "routes": [
                    {"name": "api", "upstream": "https://a:1", "rate_limits": {"per-ip": "off"}}
                ]
            },
            "routes[api].rate_limits",
        ),
    ],
    "attest.login-limit": [
        ({"rate_limit": {"login": {"enabled": False}}}, "rate_limit.login.enabled"),
        ({"rate_limit": {"login": {"paths": []}}}, "rate_limit.login.paths"),
    ],
    "attest.rate-limit-fail-closed": [
        ({"rate_limit": {"on_backend_failure": "open"}}, "rate_limit.on_backend_failure"),
    ],
    "attest.forwarded-for-trusted-narrowly": [
        ({"proxy": {"trusted_proxies": ["10.0.0.0/8", "0.0.0.0/0"]}}, "proxy.trusted_proxies[1]"),
    ],
    "attest.tls-served": [({"tls": {"enabled": False}}, "tls.enabled")],
    "attest.hsts": [
        ({"tls": {"hsts": {"max_age": 300}}}, "tls.hsts.max_age"),
        ({"tls": {"hsts": {"enabled": False}}}, "tls.hsts.enabled"),
    ],
    "attest.upstream-tls-verified": [
        ({"tls": {"upstream": {"verify": False}}}, "tls.upstream.verify"),
        (
            {"tls": {"upstream_routes": {"api": {"verify": False}}}},
            "tls.upstream_routes.api.verify",
        ),
    ],
    "attest.upstream-encrypted": [
        ({"routes": [{"name": "api", "upstream": "http://10.0.0.5:8000"}]}, "routes[api].upstream"),
    ],
}


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        elif value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def _namespace(value: Any) -> Any:
    if isinstance(value, dict):
        return SimpleNamespace(**{k: _namespace(v) for k, v in value.items()})
    return tuple(value) if isinstance(value, list) else value


def config_of(data: dict[str, Any]) -> BastionConfig:
    """The loaded configuration, with stand-ins for sections this bastion version lacks."""
    known = set(BastionConfig.model_fields)
    missing = {name for name in SECTIONS if name not in known}
    config = build_config({k: v for k, v in data.items() if k not in missing})
    stand_ins = {
        name: _namespace(merged(SECTIONS[name], data.get(name, {}))) for name in sorted(missing)
    }
    return config.model_copy(update=stand_ins) if stand_ins else config


def attest(check_id: str, data: dict[str, Any]) -> list[Any]:
    entry = default_registry()[check_id]
    assert entry.attest is not None
    return list(entry.attest(config_of(data)))


def test_every_attestation_check_has_a_weak_case() -> None:
    assert sorted(WEAK) == ATTEST_IDS


@pytest.mark.parametrize(
    ("check_id", "overrides", "location"),
    [(cid, o, loc) for cid, cases in sorted(WEAK.items()) for o, loc in cases],
)
def test_fires_on_a_weak_config(check_id: str, overrides: dict[str, Any], location: str) -> None:
    findings = attest(check_id, merged(STRONG, overrides))
    failed = [f for f in findings if f.outcome is Outcome.FAIL]
    assert [e.location for f in failed for e in f.evidence] == [location]


@pytest.mark.parametrize("check_id", ATTEST_IDS)
def test_quiet_on_a_strong_config(check_id: str) -> None:
    findings = attest(check_id, STRONG)
    assert {f.outcome for f in findings} == {Outcome.PASS}, [f.message for f in findings]


def test_hsts_is_not_judged_without_tls() -> None:
    findings = attest("attest.hsts", merged(STRONG, {"tls": {"enabled": False}}))
    assert [f.outcome for f in findings] == [Outcome.SKIP]


def test_auto_default_passes_and_says_so() -> None:
    findings = attest("attest.auth-required", merged(STRONG, {"auth": {"default": "auto"}}))
    assert findings[0].outcome is Outcome.PASS
    assert "auto" in findings[0].message


def test_sections_this_version_lacks_are_skipped_not_failed() -> None:
    config = build_config({k: v for k, v in STRONG.items() if k not in SECTIONS})
    for check_id in ("attest.validation-strict", "attest.monitoring-alerts"):
        entry = default_registry()[check_id]
        assert entry.attest is not None
        stripped = config.model_copy(update={name: None for name in SECTIONS})
        findings = list(entry.attest(stripped))
        assert [f.outcome for f in findings] == [Outcome.SKIP]


def test_strict_mode_is_not_judged_while_validation_is_off() -> None:
    findings = attest(
        "attest.validation-strict", merged(STRONG, {"validation": {"enabled": False}})
    )
    assert [f.outcome for f in findings] == [Outcome.SKIP]


def test_a_config_file_loads_through_bastions_loader(tmp_path: Path) -> None:
    path = tmp_path / "bastion.yaml"
    data = {k: v for k, v in STRONG.items() if k not in SECTIONS or k in BastionConfig.model_fields}
    path.write_text(yaml.safe_dump(merged(data, {"events": {"sink": "none"}})))
    entry = default_registry()["attest.events-enabled"]
    assert entry.attest is not None
    findings = list(entry.attest(load_config(path)))
    assert findings[0].outcome is Outcome.FAIL


def test_a_public_login_route_is_accepted_a_public_route_is_not() -> None:
    upstream = "http://127.0.0.1:9000"
    login = {"name": "login", "upstream": upstream, "path_prefix": "/login", "login": True,
             "auth": {"require": "public"}}  # fmt: skip
    plain = {**login, "name": "docs", "path_prefix": "/docs", "login": False}
    base = {k: v for k, v in STRONG.items() if k != "routes"}
    accepted = attest("attest.auth-required", {**base, "routes": [login]})
    assert [f.outcome for f in accepted] == [Outcome.PASS]
    refused = attest("attest.auth-required", {**base, "routes": [login, plain]})
    assert [f.outcome for f in refused] == [Outcome.FAIL]
    assert "route docs is public" in refused[0].message + str(
        [e.summary for e in refused[0].evidence]
    )
