"""PostgreSQL for the tests: the shared server at 127.0.0.1:5432, or one started for the run."""
