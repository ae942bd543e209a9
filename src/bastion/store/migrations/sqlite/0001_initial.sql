-- The API key tables bastion created before versioned migrations existed, unchanged; every
-- statement is idempotent, so a file those releases created upgrades to version 1 as it is.
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
