"""bastion: a production security baseline for any HTTP API, and the proof that it has one.

The public surface is what ``__all__`` lists; everything else may change between releases.
"""

from bastion.asgi import BastionMiddleware
from bastion.config import BastionConfig, build_config, load_config
from bastion.errors import BastionError, ConfigError
from bastion.observability.events import EventSink, MemorySink, SecurityEvent
from bastion.pipeline import (
    ALLOW,
    Allow,
    Decision,
    Deny,
    Guard,
    GuardChain,
    Phase,
    ProblemField,
    Request,
    StateKey,
)
from bastion.version import __version__

__all__ = [
    "ALLOW",
    "Allow",
    "BastionConfig",
    "BastionError",
    "BastionMiddleware",
    "ConfigError",
    "Decision",
    "Deny",
    "EventSink",
    "Guard",
    "GuardChain",
    "MemorySink",
    "Phase",
    "ProblemField",
    "Request",
    "SecurityEvent",
    "StateKey",
    "__version__",
    "build_config",
    "load_config",
]
