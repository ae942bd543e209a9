"""Report writers, one module per format; :data:`FORMATS` maps a ``--format`` name to one."""

from __future__ import annotations

from collections.abc import Callable

from bastion.audit.report import AuditReport
from bastion.audit.reporters import html, json_report, junit, markdown, sarif, terminal

FORMATS: dict[str, tuple[str, Callable[[AuditReport], str]]] = {
    "terminal": ("", terminal.render),
    "json": ("bastion-audit.json", json_report.render),
    "sarif": ("bastion-audit.sarif", sarif.render),
    "junit": ("bastion-audit.junit.xml", junit.render),
    "html": ("bastion-audit.html", html.render),
    "markdown": ("bastion-audit.md", markdown.render),
}
"""format -> (file name under --out, renderer); the terminal report goes to standard output."""
