"""Builds the alert sinks and the dispatcher that ``monitoring.alerts`` describes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from bastion.config.monitoring import (
    AlertsConfig,
    AlertSinkConfig,
    CommandSinkConfig,
    EmailSinkConfig,
)
from bastion.errors import ConfigError
from bastion.observability.alerts.command import CommandSink
from bastion.observability.alerts.dispatcher import AlertDispatcher
from bastion.observability.alerts.email import EmailSink
from bastion.observability.alerts.model import AlertSink
from bastion.observability.alerts.webhook import WebhookSink


def smtp_password(config: EmailSinkConfig, index: int) -> str | None:
    """The SMTP password from the environment; a :class:`ConfigError` naming the field when
    the variable is not set (an operator error, reported at start, not at the first alert)."""
    if config.password_env is None:
        return None
    password = os.environ.get(config.password_env)
    if password is None:
        raise ConfigError(
            f"monitoring.alerts.sinks[{index}].password_env: the environment variable "
            f"{config.password_env} is not set; expected the SMTP password in it"
        )
    return password


def check_sinks(config: AlertsConfig) -> None:
    """What building the sinks would refuse, without building them."""
    for index, sink in enumerate(config.sinks):
        if isinstance(sink, EmailSinkConfig):
            smtp_password(sink, index)


def build_sink(config: AlertSinkConfig, index: int) -> AlertSink:
    if isinstance(config, CommandSinkConfig):
        return CommandSink(config.argv, name=config.name, timeout=config.timeout)
    if isinstance(config, EmailSinkConfig):
        password = smtp_password(config, index)
        return EmailSink(
            host=config.host,
            port=config.port,
            sender=config.sender,
            to=config.to,
            name=config.name,
            security=config.security,
            username=config.username,
            password=password,
            subject_prefix=config.subject_prefix,
            timeout=config.timeout,
        )
    return WebhookSink(
        config.url,
        name=config.name,
        format=config.format,
        headers=dict(config.headers),
        timeout=config.timeout,
    )


def build_dispatcher(
    config: AlertsConfig, clock: Callable[[], float] = time.time
) -> AlertDispatcher:
    return AlertDispatcher(
        [build_sink(sink, i) for i, sink in enumerate(config.sinks)],
        cooldown=config.cooldown,
        queue=config.queue,
        retries=config.retries,
        backoff=config.backoff,
        backoff_max=config.backoff_max,
        max_keys=config.max_keys,
        clock=clock,
    )
