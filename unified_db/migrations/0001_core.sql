-- Core: figures each instance flushes for the dashboard (stats_flush_interval).
-- migrate:up
CREATE TABLE __schema__.instance_stats (
    instance_id text PRIMARY KEY,
    namespace text NOT NULL,
    application_name text NOT NULL,
    hostname text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL,
    flushed_at timestamptz NOT NULL DEFAULT now(),
    stats jsonb NOT NULL
);
CREATE INDEX instance_stats_flushed_at ON __schema__.instance_stats (flushed_at);
-- migrate:down
DROP TABLE __schema__.instance_stats;
