"""The guard practice 3 adds to a chain: ``validation``, when ``validation.enabled`` is true."""

from __future__ import annotations

import logging

from bastion.config.models import BastionConfig
from bastion.observability.events import EventSink
from bastion.pipeline.guard import Guard
from bastion.validation.compiler import compile_api
from bastion.validation.document import load_api
from bastion.validation.guard import ValidationGuard, response_modes

logger = logging.getLogger("bastion.validation")


def validation_guards(config: BastionConfig, events: EventSink) -> list[Guard]:
    """The ``validation`` guard built on ``config.openapi``, compiled once here at start."""
    settings = config.validation
    if not settings.enabled or config.openapi is None:
        return []
    responses = response_modes(config)
    api = compile_api(load_api(config.openapi), strict=settings.strict, responses=responses)
    logger.info(
        "validation: %d operations of %s compiled in %.0f ms (%s mode%s)",
        api.operations,
        config.openapi,
        api.seconds * 1000,
        settings.mode,
        ", strict" if settings.strict else "",
    )
    if settings.mode == "monitor":
        logger.warning("validation: monitor mode; violations are recorded, not refused")
    if settings.pass_through:
        logger.warning(
            "validation: routes %s are forwarded without validation",
            ", ".join(settings.pass_through),
        )
    if responses:
        logger.info(
            "validation: upstream responses checked (%s; by route: %s)",
            settings.responses,
            ", ".join(f"{k}={v}" for k, v in settings.responses_by_route.items()) or "none",
        )
    return [ValidationGuard(config, api, events)]
