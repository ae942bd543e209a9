-- The event store: security events kept for `bastion events` and the admin API's events query,
-- in the state store file beside the API keys. (The release before this migration kept them in
-- a file of their own, state_dir/events.db; opening the event store moves those rows here.)
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
