"""The bundled demo API and what ``bastion demo`` shows a new user."""
