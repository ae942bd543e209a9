"""Configuration: typed models and the loader that explains what is wrong."""

from bastion.config.loader import build_config, load_config
from bastion.config.models import BastionConfig, RouteConfig

__all__ = ["BastionConfig", "RouteConfig", "build_config", "load_config"]
