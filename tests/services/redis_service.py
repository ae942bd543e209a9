"""Redis for the tests: the shared server at 127.0.0.1:6379, or one started for the run."""
