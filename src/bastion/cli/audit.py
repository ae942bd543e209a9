"""``bastion audit``: grade an API against the five practices, in a terminal or in CI.

Exit codes: 0 when nothing new at or above ``--fail-on`` remains, 1 when something does, 2 for
usage errors (bad option, unreadable file) and targets that do not answer at all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import click

from bastion.audit import openapi
from bastion.audit.checks import default_registry
from bastion.audit.model import CheckInfo, Finding, Outcome, Severity
from bastion.audit.report import AuditReport, build_report
from bastion.audit.reporters import FORMATS, terminal
from bastion.audit.runner import AuditPlan, TargetUnreachable, run
from bastion.audit.triage import load_baseline, load_suppressions, triage, write_baseline
from bastion.cli.common import EXIT_USAGE, fail_config, load_or_exit
from bastion.errors import ConfigError

_HEADER = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_auth(values: Sequence[str], option: str = "--auth") -> list[tuple[str, str]]:
    """``'Header: value'`` pairs; a malformed one is a usage error that never echoes the value."""
    pairs: list[tuple[str, str]] = []
    for index, text in enumerate(values, 1):
        name, sep, value = text.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value or not set(name) <= _HEADER:
            raise click.BadParameter(
                f"value number {index} is not of the form 'Header-Name: value' (not shown: it may"
                " be a secret)",
                param_hint=option,
            )
        pairs.append((name, value))
    return pairs


def parse_formats(text: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise click.BadParameter(
            f"got {text!r}; expected a comma-separated list of {', '.join(FORMATS)}",
            param_hint="--format",
        )
    return list(dict.fromkeys(names))


def _verify(ca: Path | None) -> bool | ssl.SSLContext:
    if ca is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise click.BadParameter(
            f"{ca}: not a readable PEM CA bundle ({exc})", param_hint="--ca"
        ) from None


class _Progress:
    """One status line on a terminal's standard error, rewritten after each check."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.width = 0

    def __call__(
        self, done: int, total: int, info: CheckInfo, found: Sequence[Finding] | None
    ) -> None:
        if not self.enabled:
            return
        if found is None:
            text = f"[{done + 1:>3}/{total}] {info.id} ..."
        else:
            outcome = "fail" if any(f.outcome is Outcome.FAIL for f in found) else "ok"
            text = f"[{done:>3}/{total}] {info.id} {outcome}"
        pad = max(0, self.width - len(text))
        self.width = len(text)
        click.echo("\r" + text + " " * pad, nl=False, err=True)

    def close(self) -> None:
        if self.enabled and self.width:
            click.echo("\r" + " " * self.width + "\r", nl=False, err=True)


@click.command("audit")
@click.argument("url", required=False)
@click.option("--openapi", "openapi_source", metavar="FILE|URL", help="The API's OpenAPI document.")
@click.option(
    "--auth",
    "auth_values",
    multiple=True,
    metavar="'Header: value'",
    help="A working credential for the live checks (repeatable); masked in every report.",
)
@click.option(
    "--other-auth",
    "other_auth_values",
    multiple=True,
    metavar="'Header: value'",
    help="A second identity's credential (per-credential rate-limit isolation); masked.",
)
@click.option("--plain-http-url", metavar="URL", help="Where plain HTTP is tried (default :80).")
@click.option("--profile", type=click.Choice(["api", "browser"]), default="api", show_default=True)
@click.option("--aggressive", is_flag=True, help="Also run intrusive checks (bursts, tampering).")
@click.option("--budget", type=click.IntRange(min=1), default=500, show_default=True,
              help="Most live requests to send.")  # fmt: skip
@click.option("--pacing", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds between live requests.")  # fmt: skip
@click.option("--format", "format_text", default="terminal", show_default=True,
              help=f"Comma-separated: {','.join(FORMATS)}.")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("."),
              show_default=True, help="Directory for the report files.")  # fmt: skip
@click.option("--fail-on", "fail_on_text", default="high", show_default=True,
              help="Lowest severity that fails: info, low, medium, high, critical.")  # fmt: skip
@click.option("--baseline", type=click.Path(path_type=Path, dir_okay=False),
              help="Fail only on findings this baseline does not hold.")  # fmt: skip
@click.option("--write-baseline", type=click.Path(path_type=Path, dir_okay=False),
              help="Write this run's failed findings as a baseline.")  # fmt: skip
@click.option("--suppressions", type=click.Path(path_type=Path, dir_okay=False),
              help="YAML of accepted findings, each with reason and expiry.")  # fmt: skip
@click.option("--gateway-config", type=click.Path(path_type=Path, dir_okay=False),
              help="A bastion config file: attest what it proves.")  # fmt: skip
@click.option("--static", "static_only", is_flag=True,
              help="Audit only the OpenAPI document (URL optional).")  # fmt: skip
@click.option("--ca", type=click.Path(path_type=Path, dir_okay=False),
              help="PEM CA bundle that verifies the target's certificate.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds per live request.")  # fmt: skip
@click.option("--progress/--no-progress", default=None,
              help="Progress on standard error (default: when it is a terminal).")  # fmt: skip
@click.option("--color/--no-color", default=None, help="Colour the terminal report.")
@click.option("--list-checks", is_flag=True, help="List every check (id, severity, kind) and exit.")
def audit(
    url: str | None,
    openapi_source: str | None,
    auth_values: tuple[str, ...],
    other_auth_values: tuple[str, ...],
    plain_http_url: str | None,
    profile: str,
    aggressive: bool,
    budget: int,
    pacing: float,
    format_text: str,
    out: Path,
    fail_on_text: str,
    baseline: Path | None,
    write_baseline: Path | None,
    suppressions: Path | None,
    gateway_config: Path | None,
    static_only: bool,
    ca: Path | None,
    timeout: float,
    progress: bool | None,
    color: bool | None,
    list_checks: bool,
) -> None:
    """Grade the API at URL against the five practices (static, live and attested checks)."""
    if list_checks:
        for info in default_registry().infos():
            click.echo(
                f"{info.id:<40} {info.severity.label:<8} {info.kind.value:<11}"
                f" {info.practice.value:<14} {info.title}"
            )
        return
    if url is None and not static_only:
        raise click.UsageError("URL is required (or --static with --openapi FILE)")
    if static_only and openapi_source is None:
        raise click.UsageError("--static audits the OpenAPI document: give --openapi FILE|URL")
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise click.BadParameter(
            f"got {url!r}; expected an http:// or https:// URL", param_hint="URL"
        )
    try:
        fail_on = Severity.parse(fail_on_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fail-on") from None
    formats = parse_formats(format_text)
    auth = parse_auth(auth_values)
    other_auth = parse_auth(other_auth_values, "--other-auth")
    if plain_http_url is not None and urlsplit(plain_http_url).scheme != "http":
        raise click.BadParameter(
            f"got {plain_http_url!r}; expected an http:// URL", param_hint="--plain-http-url"
        )
    verify = _verify(ca)
    try:
        document = openapi.load(openapi_source, verify=verify) if openapi_source else None
        known = load_baseline(baseline) if baseline is not None else frozenset()
        accepted = load_suppressions(suppressions) if suppressions is not None else ()
    except ConfigError as exc:
        fail_config(exc)
    config = load_or_exit(gateway_config) if gateway_config is not None else None
    plan = AuditPlan(
        url=url,
        document=document,
        config=config,
        auth=auth,
        profile=profile,
        aggressive=aggressive,
        static_only=static_only,
        budget=budget,
        pacing=pacing,
        verify=verify,
        timeout=timeout,
        other_auth=other_auth,
        plain_http_url=plain_http_url,
    )
    started = dt.datetime.now(dt.UTC)
    show = _Progress(sys.stderr.isatty() if progress is None else progress)
    try:
        result = asyncio.run(run(default_registry(), plan, show))
    except TargetUnreachable as exc:
        show.close()
        click.echo(f"bastion: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    show.close()
    report = build_report(
        url or openapi_source or "",
        result.findings,
        fail_on=fail_on,
        triaged=triage(result.findings, known, accepted),
        openapi=openapi_source,
        gateway_config=str(gateway_config) if gateway_config else None,
        profile=profile,
        aggressive=aggressive,
        requests=result.requests,
        budget=0 if static_only or url is None else budget,
        started=started,
    )
    write_reports(report, formats, out, color)
    if write_baseline is not None:
        write_baseline_file(write_baseline, result.findings)
    sys.exit(report.exit_code)


def write_reports(
    report: AuditReport, formats: Sequence[str], out: Path, color: bool | None
) -> None:
    """The terminal report on standard output, every other format as a file under ``out``."""
    for name in formats:
        filename, render = FORMATS[name]
        if name == "terminal":
            colour = sys.stdout.isatty() if color is None else color
            click.echo(terminal.render(report, colour=colour), nl=False)
            continue
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / filename).write_text(render(report), encoding="utf-8")
        except OSError as exc:
            fail_config(ConfigError(f"--out {out}: cannot write {filename} ({exc.strerror})"))
        click.echo(f"wrote {out / filename}", err=True)
    if "terminal" not in formats:  # a CI log still shows the outcome in one line
        card = report.scorecard
        score = "n/a" if card.score is None else f"{card.score}/100"
        click.echo(
            f"bastion audit: grade {card.grade} ({score}), {len(report.gating)} new finding(s)"
            f" at or above {report.fail_on.label}",
            err=True,
        )


def write_baseline_file(path: Path, findings: Sequence[Finding]) -> None:
    try:
        write_baseline(path, findings)
    except OSError as exc:
        fail_config(ConfigError(f"--write-baseline {path}: cannot be written ({exc.strerror})"))
    click.echo(f"wrote baseline {path}", err=True)
