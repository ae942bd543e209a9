"""The tables bastion created before versioned migrations (commit 0ec38c8 and earlier), verbatim,
so that tests can build a database exactly as those releases left it."""

from __future__ import annotations

POSTGRES_KEYS = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.api_keys (
    id text PRIMARY KEY,
    hash text NOT NULL,
    consumer text NOT NULL,
    name text NOT NULL DEFAULT '',
    scopes text NOT NULL DEFAULT '',
    tier text,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL,
    revoked_at double precision,
    last_used_at double precision,
    replaced_by text,
    revision bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_revision ON {schema}.api_keys (revision);
CREATE INDEX IF NOT EXISTS api_keys_consumer ON {schema}.api_keys (consumer);
CREATE TABLE IF NOT EXISTS {schema}.api_key_state (
    id integer PRIMARY KEY CHECK (id = 1),
    revision bigint NOT NULL,
    pepper_check text
);
INSERT INTO {schema}.api_key_state (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
"""

POSTGRES_SIGNING = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.signing_keys (
    kid text PRIMARY KEY,
    alg text NOT NULL,
    created_at double precision NOT NULL,
    activates_at double precision NOT NULL,
    sealed_key bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.signing_key_state (
    id integer PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL,
    seal_check text
);
INSERT INTO {schema}.signing_key_state (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
"""

SQLITE = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    consumer TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    scopes TEXT NOT NULL DEFAULT '',
    tier TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    revoked_at REAL,
    last_used_at REAL,
    replaced_by TEXT,
    revision INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_revision ON api_keys (revision);
CREATE INDEX IF NOT EXISTS api_keys_consumer ON api_keys (consumer);
CREATE TABLE IF NOT EXISTS api_key_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL,
    pepper_check TEXT
);
INSERT OR IGNORE INTO api_key_state (id, revision) VALUES (1, 0);
"""

# The event store tables as gateways created them on their own before migration 2 (commit
# 6d67a55): SQLite in state_dir/events.db, PostgreSQL in the configured schema.
SQLITE_EVENTS = """
CREATE TABLE IF NOT EXISTS security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    dataset TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    user_id TEXT,
    client_ip TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    status INTEGER,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS security_events_ts ON security_events (ts);
CREATE INDEX IF NOT EXISTS security_events_user ON security_events (user_id, ts);
CREATE INDEX IF NOT EXISTS security_events_ip ON security_events (client_ip, ts);
"""
POSTGRES_EVENTS = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.security_events (
    id bigserial PRIMARY KEY,
    ts double precision NOT NULL,
    dataset text NOT NULL,
    action text NOT NULL,
    outcome text NOT NULL,
    user_id text,
    client_ip text NOT NULL DEFAULT '',
    request_id text NOT NULL DEFAULT '',
    status integer,
    document text NOT NULL
);
CREATE INDEX IF NOT EXISTS security_events_ts ON {schema}.security_events (ts);
CREATE INDEX IF NOT EXISTS security_events_user ON {schema}.security_events (user_id, ts);
CREATE INDEX IF NOT EXISTS security_events_ip ON {schema}.security_events (client_ip, ts)
"""
