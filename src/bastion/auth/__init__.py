"""Practice 1: strong authentication and the credential lifecycle."""
