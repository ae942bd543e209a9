"""The detectors behind the guard, behind one call: which kinds of injection a string carries.

SQL injection and XSS come from libinjection (its C sources are vendored under ``native/`` and
built with bastion as the ``_bastion_libinjection`` extension): chosen over ModSecurity with the
OWASP CRS for its measured speed (about 1 µs per value, in process, no rule engine) and its low
false-positive rate on ordinary text; the measurements are in docs/injection.md. Shell command
injection is :mod:`bastion.validation.injection.command`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Final

from bastion.config.injection import Kind
from bastion.errors import ConfigError
from bastion.validation.injection.command import TRIGGER as _TRIGGER
from bastion.validation.injection.command import looks_like_command_injection


def _load() -> ModuleType | None:
    try:
        return importlib.import_module("_bastion_libinjection")
    except ImportError:  # built with bastion; missing only after a build without a C compiler
        return None


_native = _load()

_PLAIN = re.compile(r"[\w.@]*")
"""A single word (letters, digits, ``_``, ``.``, ``@``): libinjection flags none (every word of
its keyword table was checked, see tests) and neither does the command tokenizer."""

SQLI: Final = 1
XSS: Final = 2


def native_version() -> str:
    """The libinjection version in use; a :class:`ConfigError` when it was not built."""
    if _native is None:
        raise ConfigError(
            "injection: the libinjection extension (_bastion_libinjection) is not installed;"
            " reinstall bastion where a C compiler is available (it is built from the vendored"
            " sources), or set injection.mode: off"
        )
    return str(_native.version())


class Detector:
    """Finds the first kind of injection (among ``kinds``) in a value, or ``None``."""

    __slots__ = ("_command", "_mask", "_scan", "_sql", "_xss")

    def __init__(self, kinds: Iterable[Kind]) -> None:
        native_version()
        wanted = set(kinds)
        self._sql = "sql" in wanted
        self._xss = "xss" in wanted
        self._command = "command" in wanted
        self._mask = (SQLI if self._sql else 0) | (XSS if self._xss else 0)
        assert _native is not None  # native_version() raised otherwise
        self._scan: Callable[[str], int] = _native.scan

    def find(self, value: str, skip: frozenset[Kind] = frozenset()) -> Kind | None:
        """The kind found in ``value`` (sql first, then xss, then command), ``skip`` excepted."""
        if value.isalnum() or _PLAIN.fullmatch(value) is not None:
            return None  # one word: no SQL operator, no markup, no shell syntax to inspect
        if self._mask:
            found = self._scan(value) & self._mask
            if found:
                if found & SQLI and "sql" not in skip:
                    return "sql"
                if found & XSS and "xss" not in skip:
                    return "xss"
        if (
            self._command
            and _TRIGGER.search(value) is not None  # the tokenizer's own first test, inlined
            and "command" not in skip
            and looks_like_command_injection(value)
        ):
            return "command"
        return None


def fingerprint(value: str) -> str | None:
    """libinjection's SQL token fingerprint of ``value`` (for diagnostics and the benchmarks)."""
    native_version()
    assert _native is not None
    result = _native.sqli_fingerprint(value)
    return None if result is None else str(result)
