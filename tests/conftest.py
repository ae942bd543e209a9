"""Fixtures shared by every test package: the real backing services."""

pytest_plugins = ["tests.services.redis_service", "tests.services.postgres_service"]
