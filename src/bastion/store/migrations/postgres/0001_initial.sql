-- The tables bastion created before versioned migrations existed, unchanged: API keys with
-- their store-wide revision, and sealed signing keys with their version. Every statement is
-- idempotent, so a database those releases created upgrades to version 1 as it is. (The
-- schema itself is made by `bastion db upgrade` before any migration runs.)

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
