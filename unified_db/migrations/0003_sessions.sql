-- Sessions: server-side sessions found by the SHA-256 digest of their token.
--
-- Logged (a session must survive a crash). A touch rewrites last_accessed_at and
-- expires_at only; neither is indexed and the fillfactor leaves room on each page, so
-- that update is HOT (no index writes). Cleanup therefore scans for expired rows
-- instead of reading an index on expires_at: a periodic batch job pays that, not every
-- request.
-- migrate:up
CREATE TABLE __schema__.sessions (
    namespace text NOT NULL,
    id uuid NOT NULL,
    token_hash bytea NOT NULL,
    user_id text NOT NULL,
    data jsonb NOT NULL DEFAULT '{}'::jsonb,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_accessed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    absolute_expires_at timestamptz NOT NULL,
    idle_timeout interval NOT NULL,
    ip inet,
    user_agent text,
    PRIMARY KEY (namespace, id),
    CONSTRAINT sessions_token_hash_is_sha256 CHECK (octet_length(token_hash) = 32),
    CONSTRAINT sessions_idle_before_absolute CHECK (expires_at <= absolute_expires_at)
) WITH (fillfactor = 70);
CREATE UNIQUE INDEX sessions_token_hash ON __schema__.sessions (token_hash);
CREATE INDEX sessions_user ON __schema__.sessions (namespace, user_id);
-- migrate:down
DROP TABLE __schema__.sessions;
