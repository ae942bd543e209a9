"""The deployment files under deploy/, read the way their tools read them, and the ``bastion``
command lines they (and the operations guide) contain."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"


@dataclass
class Stage:
    """One ``FROM`` stage of a Dockerfile: its name and its instructions (keyword, text)."""

    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [text for key, text in self.instructions if key == keyword]


def dockerfile_stages(path: Path = DEPLOY / "Dockerfile") -> list[Stage]:
    """The stages, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    buffer = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") and not buffer:
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        buffer += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            if buffer.strip():
                logical.append(buffer.strip())
            buffer = ""
    stages: list[Stage] = []
    for text in logical:
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert match is not None, text
            stages.append(Stage(match[1], match[2]))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


def exec_form(text: str) -> list[str]:
    """An instruction's JSON (exec) form, e.g. ``CMD ["serve"]``; anything else fails."""
    value = json.loads(text)
    assert isinstance(value, list), text
    assert all(isinstance(v, str) for v in value), text
    return value


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def k8s_documents() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object under deploy/k8s by (kind, name), except the kustomization."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None or doc.get("kind") == "Kustomization":
                continue
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def shell_commands(markdown: Path) -> list[list[str]]:
    """The ``bastion ...`` command lines in the fenced shell blocks of a Markdown file."""
    commands: list[list[str]] = []
    inside = False
    pending = ""
    for line in markdown.read_text().splitlines():
        if line.startswith("```"):
            inside = not inside and line.strip("`").strip() in ("sh", "shell", "bash", "console")
            continue
        if not inside:
            continue
        text = pending + line.strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        text = re.split(r"\s(?:\||&&|;|>|2>)\s", text.removeprefix("$ "))[0]
        words = shlex.split(text, comments=True)
        if words and words[0] == "bastion":
            commands.append(words[1:])
    return commands
