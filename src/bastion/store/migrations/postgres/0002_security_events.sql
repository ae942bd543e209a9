-- The event store: security events kept for `bastion events` and the admin API's events query
-- (a few indexed columns and the whole redacted ECS line). Idempotent, so a schema where a
-- gateway of the release before this migration created the table on its own is adopted as it
-- is, rows included.

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
CREATE INDEX IF NOT EXISTS security_events_ip ON {schema}.security_events (client_ip, ts);
