"""The ``field_encryption`` guard: JSON values encrypted in request bodies before the upstream,
and decrypted in response bodies on the way back.

Per route (``tls.field_encryption.rules``), the values at the rule's JSON pointers are replaced
by JWE compact tokens (:mod:`bastion.tls.fields`) in the body bastion forwards: the upstream
stores ciphertext, and only holders of the key ring (an application using :mod:`bastion.fields`,
an operator with ``bastion fields decrypt``, or bastion itself on a ``response`` rule) read the
values. It runs in the forward phase, after validation, which sees the values as the client sent
them.

A ``response`` (or ``both``) rule asks the engine to hold the route's JSON responses
(:data:`~bastion.pipeline.response_body.RESPONSE_BODY`) and decrypts the tokens at the rule's
pointers before the client gets them: the upstream never sees the clear value, the authorised
client does. A value there that is not a token of the ring fails the response (502
``upstream.response_unprocessable``) rather than sending the client something it cannot read.

The guard declares ``requires_body``; the engine then buffers request bodies (up to
``limits.max_body_bytes``) and forwards ``request.body`` as the guard left it, with its new
length. A body on a rule's route that is not JSON is refused (415 or 400) rather than forwarded
unencrypted. The ring file is read again when it changes (checked at most every 5 seconds), so
``bastion fields rotate`` takes effect without a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import orjson

from bastion.config.models import BastionConfig
from bastion.errors import ConfigError, describe
from bastion.pipeline.decisions import ALLOW, Decision, Deny
from bastion.pipeline.guard import Phase
from bastion.pipeline.request import Request
from bastion.pipeline.response_body import RESPONSE_BODY
from bastion.pipeline.routing import ROUTE
from bastion.tls.fields import KeyRing, decrypt_fields, encrypt_fields, load_key_ring

logger = logging.getLogger("bastion.tls")

RING_FILE = "field-keys.json"
RELOAD_EVERY = 5.0

NOT_JSON = Deny(
    415,
    "fields.unsupported_media_type",
    "Unsupported Media Type",
    "This route accepts JSON bodies only (application/json).",
)
INVALID_JSON = Deny(400, "fields.invalid_json", "Bad Request", "The body is not valid JSON.")


def ring_path(config: BastionConfig) -> Path:
    return config.tls.field_encryption.keys_file or config.state_dir / RING_FILE


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class _Decryption:
    """The response rewrite of one route's ``response`` rules (see :class:`BodyRewrite`)."""

    __slots__ = ("guard", "pointers")

    def __init__(self, guard: FieldEncryptionGuard, pointers: tuple[str, ...]) -> None:
        self.guard = guard
        self.pointers = pointers

    def __call__(self, status: int, content_type: str | None, body: bytes) -> bytes | None:
        if not body or not _is_json(content_type):
            return None  # not a JSON document: nothing of it can hold a token
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if decrypt_fields(doc, self.pointers, self.guard._fresh_ring()):
            return orjson.dumps(doc)
        return None


class FieldEncryptionGuard:
    """The ``field_encryption`` guard (see the module docstring)."""

    name: ClassVar[str] = "field_encryption"
    phase: ClassVar[Phase] = Phase.FORWARD
    requires_body: ClassVar[bool] = True

    def __init__(
        self, config: BastionConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.fail_open = False
        settings = config.tls.field_encryption
        self.kid = settings.kid
        # route -> the methods and pointers of its request rules, and of its response rules
        self.rules: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {}
        decrypting: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {}
        for rule in settings.rules:
            for table, applies in (
                (self.rules, rule.encrypts_requests),
                (decrypting, rule.decrypts_responses),
            ):
                if applies:
                    methods, pointers = table.get(rule.route, (frozenset(), ()))
                    table[rule.route] = (methods | set(rule.applies_to), pointers + rule.pointers)
        self.responses = {
            route: (methods, _Decryption(self, pointers))
            for route, (methods, pointers) in decrypting.items()
        }
        self.rewrites_responses = bool(self.responses)
        self.path = ring_path(config)
        self.clock = clock
        existed = self.path.exists()
        self.ring: KeyRing = load_key_ring(self.path, create=True)
        if not existed:
            logger.warning("tls: field encryption key ring created at %s (0600)", self.path)
        if self.kid is not None and self.kid not in self.ring.keys:
            raise ConfigError(f"tls.field_encryption.kid {self.kid!r} is not in {self.path}")
        self._stamp = self._file_stamp()
        self._checked = clock()

    def _file_stamp(self) -> tuple[int, int]:
        try:
            info = self.path.stat()
        except OSError:
            return (0, 0)
        return (info.st_mtime_ns, info.st_ino)

    def _fresh_ring(self) -> KeyRing:
        now = self.clock()
        if now - self._checked >= RELOAD_EVERY:
            self._checked = now
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self.ring = load_key_ring(self.path)
                    logger.warning("tls: field encryption key ring reloaded from %s", self.path)
                except Exception as exc:  # keep encrypting with the ring in hand
                    # describe(): bastion's own message, or the type only for a foreign error,
                    # whose text could quote the key file.
                    logger.error(
                        "tls: field key ring reload failed, keeping the old one: %s", describe(exc)
                    )
        return self.ring

    def check(self, request: Request) -> Decision:
        route = request.state.get(ROUTE)
        if route is None:
            return ALLOW
        if self.rewrites_responses:
            response_rule = self.responses.get(route.name)
            if response_rule is not None and request.method in response_rule[0]:
                request.state[RESPONSE_BODY] = response_rule[1]
        rule = self.rules.get(route.name)
        if rule is None or request.method not in rule[0]:
            return ALLOW
        body = request.body
        if not body:
            return ALLOW
        if not _is_json(request.headers.get("content-type")):
            return NOT_JSON
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return INVALID_JSON
        if encrypt_fields(doc, rule[1], self._fresh_ring(), self.kid):
            request.body = orjson.dumps(doc)
        return ALLOW
