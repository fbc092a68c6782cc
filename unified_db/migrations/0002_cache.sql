-- Cache: one UNLOGGED table of entries per (namespace, key); see docs/cache.md.
-- UNLOGGED: writes skip the WAL (several times faster), the table is emptied after a crash
-- and is not replicated; `cache_durable=True` or `unified-db cache durable on` makes it logged.
-- fillfactor 80 leaves room on each page for HOT updates of rewritten keys; the autovacuum
-- thresholds are low because a cache churns (every set of a TTL'd key leaves a dead tuple).
-- migrate:up
CREATE UNLOGGED TABLE __schema__.cache_entries (
    namespace text NOT NULL,
    key text NOT NULL,
    value bytea NOT NULL,
    is_bytes boolean NOT NULL DEFAULT false,
    tags text[] NOT NULL DEFAULT '{}',
    expires_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- Bytes the entry costs, for cache_max_bytes and the dashboard; kept by the server.
    size_bytes integer GENERATED ALWAYS AS (octet_length(key) + octet_length(value)) STORED,
    PRIMARY KEY (namespace, key)
) WITH (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 0
);
-- The sweeper reads expired rows through this index; rows without a TTL stay out of it.
CREATE INDEX cache_entries_expires_at ON __schema__.cache_entries (namespace, expires_at)
    WHERE expires_at IS NOT NULL;
-- Tag lookups; untagged entries stay out of it (queries repeat the predicate).
CREATE INDEX cache_entries_tags ON __schema__.cache_entries USING gin (tags)
    WHERE cardinality(tags) > 0;
-- migrate:down
DROP TABLE __schema__.cache_entries;
