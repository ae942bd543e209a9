"""Where rate-limit state lives: memory (one process) or Redis (every instance)."""
