"""Practice 2: rate limiting (algorithms, storage, policies and the guard)."""
