"""The audit's checks, one module per family; each module exposes ``register(registry)``."""
