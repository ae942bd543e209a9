"""The one error tree of bastion.

Every error carries a stable ``code`` (dotted, lower case) that operators and clients can match on.
Errors are for bugs, infrastructure failures and operator mistakes; a guard refusing a request is
not an error but a :class:`bastion.pipeline.Deny` value.

::

    BastionError
    ├── ConfigError              config.invalid        a config file or option is wrong (exit 2)
    ├── StateError               state.unavailable     the state directory or a store failed
    │   └── BackendUnavailable   backend.unavailable   Redis or PostgreSQL cannot be reached in time
    ├── ProtocolError            request.malformed     a client broke HTTP/1.1 (engine -> 4xx)
    │   ├── HeadersTooLarge      request.headers_too_large      (431)
    │   ├── RequestLineTooLong   request.uri_too_long           (414)
    │   └── BodyTooLarge         request.body_too_large         (413)
    └── UpstreamError            upstream.error        the upstream failed (engine -> 5xx)
        ├── UpstreamConnectError upstream.unreachable           (502)
        ├── UpstreamTimeout      upstream.timeout               (504)
        └── UpstreamProtocolError upstream.bad_response         (502)
"""

from __future__ import annotations

from typing import ClassVar


class BastionError(Exception):
    """Base of every error bastion raises on purpose."""

    code: ClassVar[str] = "bastion.error"
    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(BastionError):
    """A configuration is invalid; ``problems`` lists each bad field as one readable line."""

    code = "config.invalid"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class StateError(BastionError):
    code = "state.unavailable"
    status = 503


class BackendUnavailable(StateError):
    """A shared backend (Redis, PostgreSQL) did not answer in time or refused the connection.

    Storage code raises it from the driver's own errors (``raise ... from exc``) so that guards
    and policies see one type; the message never contains a connection URL or password.
    """

    code = "backend.unavailable"


class ProtocolError(BastionError):
    code = "request.malformed"
    status = 400


class HeadersTooLarge(ProtocolError):
    code = "request.headers_too_large"
    status = 431


class RequestLineTooLong(ProtocolError):
    code = "request.uri_too_long"
    status = 414


class BodyTooLarge(ProtocolError):
    code = "request.body_too_large"
    status = 413


class UpstreamError(BastionError):
    code = "upstream.error"
    status = 502


class UpstreamConnectError(UpstreamError):
    code = "upstream.unreachable"
    status = 502


class UpstreamTimeout(UpstreamError):
    code = "upstream.timeout"
    status = 504


class UpstreamProtocolError(UpstreamError):
    code = "upstream.bad_response"
    status = 502


def describe(exc: BaseException) -> str:
    """What may be logged of ``exc``: its type, and its message only when bastion wrote it.

    A foreign exception's text may quote what it was handling (a backend URL with its password,
    a token, a header), so guards', endpoints' and hooks' failures are logged by type alone.
    """
    if isinstance(exc, BastionError):
        return f"{type(exc).__name__}: {exc.message}"
    return f"{type(exc).__name__} (message withheld)"
