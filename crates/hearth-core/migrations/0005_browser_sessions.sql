-- A browser signed in to the web UI. The cookie carries 32 random bytes; only their sha256 is stored, so reading
-- this table does not let anyone sign in. `created_by` is the fingerprint of the secret that signed it in (the
-- api-token's, or the setup code's), for the Settings page and the log. Additive: a hearthd of the previous
-- release ignores the table.
CREATE TABLE browser_sessions (
    id             uuid        PRIMARY KEY,
    secret_sha256  bytea       NOT NULL UNIQUE,
    created_by     text        NOT NULL,
    user_agent     text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);
CREATE INDEX browser_sessions_expires ON browser_sessions (expires_at);
