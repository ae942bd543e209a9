"""The authentication guards a configuration enables."""

from __future__ import annotations

from bastion.config.models import BastionConfig
from bastion.observability.events import EventSink
from bastion.pipeline.guard import Guard


def auth_guards(config: BastionConfig, events: EventSink) -> list[Guard]:
    """Guards of the authenticate and authorize phases, in any order (the chain orders them)."""
    return []
