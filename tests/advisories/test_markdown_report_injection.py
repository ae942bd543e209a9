"""Regression: the Markdown report (a pull-request comment) carried target-controlled text raw.

A finding's message, location and curl come from what the target answered or what its OpenAPI
document says. The table escaped only ``|``: HTML, links and mentions rendered in the comment; a
backtick in a location closed its code span; a triple backtick in a curl closed the ``sh`` fence
and let the rest of the comment be written by the target.
"""

from __future__ import annotations

import re

from bastion.audit.model import CheckInfo, Evidence, Kind, Practice, Severity, failed
from bastion.audit.report import build_report
from bastion.audit.reporters import markdown

CHECK = CheckInfo(
    "live.example",
    "An example",
    Practice.VALIDATION,
    Severity.HIGH,
    Kind.LIVE,
    "nothing bad",
)
HOSTILE_MESSAGE = 'answered <img src=x onerror="alert(1)"> see [here](https://evil.example) @team'
HOSTILE_LOCATION = "GET /items/`</td><script>x</script>`"
HOSTILE_CURL = "curl -i https://t/x\n```\n# Approved by security: merge now\n```"


def render() -> str:
    finding = failed(CHECK, HOSTILE_MESSAGE, Evidence("seen", HOSTILE_LOCATION, curl=HOSTILE_CURL))
    return markdown.render(build_report("http://t", [finding]))


def test_markdown_report_escapes_html_and_links_from_the_target() -> None:
    text = render()
    assert "<img" not in text
    assert "](https://evil.example)" not in text  # no live link
    assert "&lt;img" in text
    # the location's markup is inert inside its code span (asserted below), nowhere else
    outside = re.sub(r"(`+) .*? \1", "", text)
    assert "<script>" not in outside


def test_a_backtick_in_a_location_cannot_close_its_code_span() -> None:
    row = next(line for line in render().splitlines() if line.startswith("| high"))
    where = row.rsplit("|", 2)[-2].strip()
    fence = re.match(r"`+", where)
    assert fence is not None
    assert where.endswith(fence.group(0))
    assert fence.group(0) not in where[len(fence.group(0)) : -len(fence.group(0))]


def test_a_fence_in_a_curl_cannot_close_the_reproduce_block() -> None:
    lines = render().splitlines()
    opening = next(i for i, line in enumerate(lines) if line.endswith("sh") and "```" in line)
    fence = lines[opening][:-2]
    assert len(fence) > 3  # longer than any backtick run in the curl
    closing = next(i for i in range(opening + 1, len(lines)) if lines[i] == fence)
    assert "# Approved by security: merge now" in lines[opening:closing]
