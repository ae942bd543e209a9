"""Shell command injection: a small tokenizer that looks for a command where data should be.

libinjection covers SQL and HTML; nothing established covers shell commands, and ModSecurity's
CRS rules for them (932xxx) are word lists that refuse much ordinary English. This detector is
narrower on purpose. A value is an injection when a *shell construct that starts a command* is
followed by a *known command in a shell-like position*:

- a separator (``;``, ``|``, ``||``, ``&``, ``&&``, or a newline after a one-word value such as an
  IP address or a file name) followed by a command;
- a command substitution ``$(...)``, or a backtick pair glued to other text or standing alone,
  whose first word is a command;
- shell-only spellings that ordinary text never has: ``${IFS}`` / ``$IFS``, ``/dev/tcp/``.

Commands come in three strengths (:data:`ALWAYS`, :data:`BARE`, :data:`WITH_ARGS`) so that
English words that are also commands (``cat``, ``sleep``, ``type``) count only with a shell-like
argument (``-x``, ``/path``, ``$VAR``, a redirection, a number at the end). The command word is
read the way a shell would after removing quoting tricks (``w'h'o"am"i``, ``c\\at``, ``who$@ami``).
Markdown stays clean: inline code (a backtick span after a space) and table pipes are not taken
for commands. Measured detection and false positives: docs/injection.md.
"""

from __future__ import annotations

import re

ALWAYS = frozenset(
    [
        "whoami",
        "uname",
        "ifconfig",
        "ipconfig",
        "nslookup",
        "wget",
        "curl",
        "bash",
        "sh",
        "zsh",
        "ksh",
        "csh",
        "tcsh",
        "dash",
        "busybox",
        "nc",
        "ncat",
        "netcat",
        "socat",
        "telnet",
        "powershell",
        "pwsh",
        "cmd",
        "cmd.exe",
        "certutil",
        "bitsadmin",
        "mshta",
        "rundll32",
        "regsvr32",
        "wscript",
        "cscript",
        "chmod",
        "chown",
        "chgrp",
        "passwd",
        "systeminfo",
        "tasklist",
        "taskkill",
        "netstat",
        "base64",
        "xxd",
        "mkfifo",
        "nohup",
        "crontab",
        "useradd",
        "usermod",
        "userdel",
        "sudo",
        "xterm",
        "tftp",
        "ssh",
        "scp",
        "traceroute",
        "tracert",
        "printenv",
        "getent",
        "sysctl",
        "iptables",
        "nmap",
        "ncat.exe",
        "net.exe",
        "wmic",
        "reg.exe",
        "schtasks",
        "icacls",
    ]
)
"""Commands no English sentence puts after a separator: they count whatever follows."""

BARE = frozenset(
    [
        "id",
        "ls",
        "pwd",
        "ps",
        "env",
        "dir",
        "uptime",
        "hostname",
        "lsof",
        "groups",
        "arp",
        "route",
        "ver",
        "whoami.exe",
    ]
)
"""Commands that do harm or leak without arguments; they count at the end of the value, before a
separator or with a shell-like argument (not before a markdown table's ``|``)."""

WITH_ARGS = frozenset(
    [
        "cat",
        "echo",
        "sleep",
        "ping",
        "type",
        "more",
        "less",
        "head",
        "tail",
        "find",
        "sort",
        "kill",
        "rm",
        "cp",
        "mv",
        "touch",
        "mkdir",
        "rmdir",
        "printf",
        "grep",
        "egrep",
        "awk",
        "sed",
        "xargs",
        "tee",
        "nl",
        "tac",
        "rev",
        "od",
        "strings",
        "file",
        "time",
        "date",
        "who",
        "set",
        "net",
        "del",
        "copy",
        "start",
        "eval",
        "exec",
        "source",
        "export",
        "alias",
        "unset",
        "python",
        "python2",
        "python3",
        "perl",
        "ruby",
        "php",
        "node",
        "lua",
        "java",
        "jshell",
        "dd",
        "tar",
        "zip",
        "unzip",
        "gzip",
        "chmod",
        "ln",
        "readlink",
        "stat",
        "wc",
        "cut",
        "diff",
        "host",
        "dig",
        "whois",
        "timeout",
        "nice",
        "exit",
        "shutdown",
        "reboot",
        "halt",
        "kill",
        "pkill",
        "killall",
        "systemctl",
        "service",
        "mount",
    ]
)
"""Commands that are also English words: they count only with a shell-like argument."""

TRIGGER = re.compile(r"[;|&`$\n\r]")
"""No command injection without one of these characters."""
_SEPARATOR = re.compile(r"\|\||&&|[;|&\n\r]")
_OPENERS = " \t{(`'\"!"
_TOKEN_END = re.compile(r"[\s;|&<>(){}`,]")
_QUOTING = re.compile(r"""['"\\]|\$@|\$\*|\$\{\}""")
_BINARY_PATH = re.compile(
    r"^(?:/usr)?(?:/local)?/s?bin/[\w.+-]+$|^[a-z]:\\windows\\(?:system32\\)?[\w.]+$"
)
_SHELL_ARGUMENT = re.compile(r"""^(?:\s*[;&#><]|[|`'")]|\s+[-/~.$`\\]|\s+\d+(?:\.\d+){3}\b|\s*,)""")
_BARE_TAIL = re.compile(r"""^(?:\s*$|\s*[;&#>]|[|`'")]|\s+[-/~.$])""")
_NUMBER_TAIL = re.compile(r"^\s+\d+(?:\.\d+)?\s*(?:$|[;|&#`)'\"])")
_SHELL_ONLY = re.compile(r"\$\{IFS\}|\$IFS\b|/dev/(?:tcp|udp)/")
_NUMERIC_COMMANDS = frozenset({"sleep", "ping", "timeout"})
_ONE_WORD = re.compile(r"^\S{1,64}$")


def _command_word(text: str, start: int) -> tuple[str, int]:
    """The command word at ``start`` with quoting removed, and where it ends."""
    match = _TOKEN_END.search(text, start)
    end = match.start() if match is not None else len(text)
    word = text[start:end]
    if not word.isalnum():  # quotes, backslashes, $@ inside a word are shell-quoting tricks
        word = _QUOTING.sub("", word)
    return word.lower(), end


def _is_command(text: str, start: int, glued: bool = False) -> bool:
    """True when a command starts at ``start`` (after a separator or an opener). ``glued``: the
    separator touches the word (``x;echo``), which prose never writes, so any known command
    counts whatever follows it."""
    length = len(text)
    while start < length and text[start] in _OPENERS:
        start += 1
    if start >= length:
        return False
    word, end = _command_word(text, start)
    if not word:
        return False
    if word in ALWAYS or _BINARY_PATH.match(word):
        return True
    tail = text[end:]
    if glued and (word in BARE or word in WITH_ARGS):
        return True
    if word in BARE:
        return _BARE_TAIL.match(tail) is not None
    if word in WITH_ARGS:
        if word in _NUMERIC_COMMANDS and _NUMBER_TAIL.match(tail):
            return True
        return tail != "" and tail.strip() != "" and _SHELL_ARGUMENT.match(tail) is not None
    return False


def _substitutions(text: str) -> bool:
    """``$(command ...)`` anywhere, and backtick spans that are not markdown inline code."""
    index = text.find("$(")
    while index != -1:
        if not text.startswith("$((", index) and _is_command(text, index + 2):
            return True
        index = text.find("$(", index + 2)
    index = text.find("`")
    while index != -1:
        run = 1
        while text.startswith("`", index + run):
            run += 1
        if run > 1:  # a markdown code fence or a double-backtick span, not a substitution
            index = text.find("`", index + run)
            continue
        close = text.find("`", index + 1)
        if close == -1:
            break
        glued = index > 0 and not text[index - 1].isspace()
        alone = text[:index].strip() == "" and text[close + 1 :].strip() == ""
        if (glued or alone) and _is_command(text[:close], index + 1):
            return True
        index = text.find("`", close + 1)
    return False


def _separated(text: str) -> bool:
    for match in _SEPARATOR.finditer(text):
        if match.group() in "\n\r" and not _ONE_WORD.match(text[: match.start()].strip() or "-"):
            continue  # a new line in prose, not a value with a command appended
        end = match.end()
        glued = match.group() not in "&\n\r" and end < len(text) and text[end].isalpha()
        if glued and match.start() > 0 and text[match.start() - 1].isspace():
            glued = False  # "a ;b" is spaced on one side: still prose-like
        if _is_command(text, end, glued):
            return True
    return False


def looks_like_command_injection(value: str) -> bool:
    """True when ``value`` carries a shell command (see the module docstring)."""
    if TRIGGER.search(value) is None:
        return False
    if ("$" in value or "/dev/" in value) and _SHELL_ONLY.search(value) is not None:
        return True
    return _substitutions(value) or _separated(value)
