"""The TLS side of the listener: certificates by SNI, client certificates, and reloading.

The listening socket keeps one :class:`ssl.SSLContext` for its whole life (the *dispatcher*);
its SNI callback, called by OpenSSL for every ClientHello with or without a server name, moves
the handshake to the context of the certificate serving that name, taken from the set loaded
last. A reload (files changed, seen by polling every ``tls.reload_interval``, or SIGHUP) builds
a complete new set and swaps it in one assignment: handshakes already done keep their
context, new ones get the new certificates, and no connection is dropped. A set that fails to
load (unreadable file, key not matching the certificate) is logged and the old set stays.

Every context has the same profile (:mod:`bastion.tls.profiles`) and client-certificate
settings, because OpenSSL keeps the protocol versions, suites and verification mode of the
context a handshake started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bastion.config.tls import CertificateFiles, TLSConfig
from bastion.errors import ConfigError
from bastion.tls.certs import CertificateFacts, load_chain
from bastion.tls.devca import DevCertificate, ensure_dev_certificate
from bastion.tls.profiles import server_context

logger = logging.getLogger("bastion.tls")

MAX_LIFETIME_DAYS = {"intermediate": 366, "modern": 90}
"""Mozilla's certificate lifetime limits per profile; a longer one is served, with a warning."""

SNI_ATTRIBUTE = "bastion_server_name"
"""Where the SNI callback notes the client's server name on the ``SSLObject`` (the engine reads
it into ``TLSInfo.server_name``; a server-side ``SSLObject`` has no ``server_hostname``)."""


@dataclass(frozen=True, slots=True)
class Served:
    """One loaded certificate: its files, what it says, and the context that serves it."""

    files: CertificateFiles
    facts: CertificateFacts
    context: ssl.SSLContext


class CertificateSet:
    """The certificates loaded at one time, looked up by server name."""

    def __init__(self, served: Sequence[Served]) -> None:
        self.served = tuple(served)
        self.default = self.served[0]
        self.exact: dict[str, Served] = {}
        self.wildcard: dict[str, Served] = {}
        for item in self.served:
            for name in item.facts.dns_names:
                table = self.wildcard if name.startswith("*.") else self.exact
                table.setdefault(name[2:] if name.startswith("*.") else name, item)

    def for_name(self, name: str | None) -> Served:
        if not name:
            return self.default
        name = name.lower().rstrip(".")
        found = self.exact.get(name)
        if found is not None:
            return found
        _, _, parent = name.partition(".")
        return self.wildcard.get(parent, self.default)


def _stamp(path: Path) -> tuple[int, int, int]:
    try:
        info = path.stat()
    except OSError:
        return (0, 0, 0)
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def _warn_key_mode(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077:
            logger.warning(
                "tls: private key %s is readable by other users; expected mode 0600", path
            )


class ServerTLS:
    """The TLS settings of one listener: build with :meth:`load`, serve :attr:`context`."""

    def __init__(self, config: TLSConfig, state_dir: Path) -> None:
        self.config = config
        self.state_dir = state_dir
        self.dev: DevCertificate | None = None
        self.dev_created = False  # the development CA was made by this load
        self.reload_requested: asyncio.Event | None = None  # set while watch() runs
        self.files: tuple[CertificateFiles, ...] = config.certificates
        self.current: CertificateSet | None = None
        self.context: ssl.SSLContext | None = None
        self.reloads = 0
        self.on_reload: list[Callable[[CertificateSet], None]] = []
        self._stamps: tuple[tuple[int, int, int], ...] = ()

    # -- loading -------------------------------------------------------------------------------

    def watched(self) -> list[Path]:
        paths = [p for f in self.files for p in (f.cert, f.key)]
        return [*paths, *self.config.client_auth.ca]

    def _new_context(self, files: CertificateFiles) -> ssl.SSLContext:
        context = server_context(self.config.profile)
        try:
            context.load_cert_chain(files.cert, files.key)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"tls: the key {str(files.key)!r} does not match the certificate"
                f" {str(files.cert)!r} or cannot be read ({exc.reason or 'invalid PEM'});"
                " expected an unencrypted PEM key of that certificate"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"tls: cannot read {str(files.cert)!r} or {str(files.key)!r} ({exc.strerror});"
                " expected readable PEM files"
            ) from None
        auth = self.config.client_auth
        if auth.mode != "none":
            for ca in auth.ca:
                try:
                    context.load_verify_locations(cafile=ca)
                except (ssl.SSLError, OSError):
                    raise ConfigError(
                        f"tls.client_auth.ca: {str(ca)!r} is not a readable PEM CA file"
                    ) from None
            context.verify_mode = (
                ssl.CERT_REQUIRED if auth.mode == "required" else ssl.CERT_OPTIONAL
            )
        return context

    def build(self) -> CertificateSet:
        """Load every certificate into its own context (raises :class:`ConfigError`)."""
        served = []
        longest = MAX_LIFETIME_DAYS[self.config.profile]
        for files in self.files:
            facts = CertificateFacts.of(load_chain(files.cert)[0])
            served.append(Served(files, facts, self._new_context(files)))
            _warn_key_mode(files.key)
            days = (facts.not_after - facts.not_before).days
            if days > longest:
                logger.warning(
                    "tls: certificate %s is valid for %d days; the Mozilla %s profile expects at"
                    " most %d (clients may refuse longer ones)",
                    files.cert,
                    days,
                    self.config.profile,
                    longest,
                )
        return CertificateSet(served)

    def load(self) -> ssl.SSLContext:
        """Resolve the certificates (the development one when none is configured), load them
        and return the listener's context. Raises :class:`ConfigError` on a bad file."""
        if not self.files:
            self.dev, self.dev_created = ensure_dev_certificate(
                self.state_dir, self.config.dev_names
            )
            self.files = (CertificateFiles(cert=self.dev.cert, key=self.dev.key),)
        self._stamps = tuple(_stamp(p) for p in self.watched())
        current = self.build()
        self.current = current
        dispatcher = self._new_context(current.default.files)
        dispatcher.sni_callback = self._select
        self.context = dispatcher
        return dispatcher

    def _select(self, ssl_object: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        current = self.current
        if current is None:
            return
        ssl_object.context = current.for_name(name).context
        if name:
            setattr(ssl_object, SNI_ATTRIBUTE, name)

    # -- reloading -----------------------------------------------------------------------------

    def changed(self) -> bool:
        return tuple(_stamp(p) for p in self.watched()) != self._stamps

    def reload(self, *, force: bool = False) -> bool:
        """Load the files again if they changed (or ``force``); whether a new set serves now."""
        if self.dev is not None:
            # A development certificate near its end is renewed by the same check.
            ensure_dev_certificate(self.state_dir, self.config.dev_names)
        if not force and not self.changed():
            return False
        stamps = tuple(_stamp(p) for p in self.watched())
        try:
            current = self.build()
        except ConfigError as exc:
            logger.error("tls: reload failed, the previous certificates stay in use: %s", exc)
            self._stamps = stamps  # do not retry a broken set until the files change again
            return False
        self._stamps = stamps
        self.current = current
        self.reloads += 1
        names = ", ".join(s.facts.dns_names[0] if s.facts.dns_names else s.facts.subject
                          for s in current.served)  # fmt: skip
        logger.warning("tls: certificates reloaded (%s)", names)
        for hook in self.on_reload:
            hook(current)
        return True

    async def watch(self, stop: asyncio.Event) -> None:
        """Poll the files every ``reload_interval`` seconds and reload on SIGHUP, until ``stop``."""
        loop = asyncio.get_running_loop()
        hup = self.reload_requested = asyncio.Event()  # also set by a config reload's SIGHUP
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, hup.set)
        interval = self.config.reload_interval or None
        try:
            while not stop.is_set():
                waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(hup.wait())}
                await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
                if stop.is_set():
                    return
                forced = hup.is_set()
                hup.clear()
                try:
                    self.reload(force=forced)
                except Exception:
                    logger.exception("tls: reload failed")
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)


def describe_listener(tls: ServerTLS) -> str:
    """One line for the start announcement: profile, certificates, client certificates."""
    current = tls.current
    names = []
    if current is not None:
        for item in current.served:
            names.append(item.facts.dns_names[0] if item.facts.dns_names else item.facts.subject)
    text = f"TLS {tls.config.profile} ({', '.join(names) or 'no certificate'}"
    if tls.dev is not None:
        text += ", development certificate"
    if tls.config.client_auth.mode != "none":
        text += f", client certificates {tls.config.client_auth.mode}"
    return text + ")"
