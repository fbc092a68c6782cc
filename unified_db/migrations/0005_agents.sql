-- Agents, workflow runs, and the LangGraph checkpointer's three tables.
-- Every table carries namespace; every query filters by it.
-- migrate:up
CREATE TABLE __schema__.agents (
    namespace text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    persona_name text,
    config jsonb NOT NULL DEFAULT '{}'::jsonb,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'retired')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, id)
);
CREATE INDEX agents_status ON __schema__.agents (namespace, status, id);

-- Rows change status and heartbeat often: leave room on the page for HOT updates.
CREATE TABLE __schema__.workflow_runs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    namespace text NOT NULL,
    agent_id text,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    priority integer NOT NULL DEFAULT 0,
    input jsonb,
    output jsonb,
    error text,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    attempts integer NOT NULL DEFAULT 0,
    worker text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    heartbeat_at timestamptz,
    FOREIGN KEY (namespace, agent_id) REFERENCES __schema__.agents (namespace, id) ON DELETE CASCADE
) WITH (fillfactor = 80);
-- Claiming reads the oldest, most urgent pending run: a partial index holds only those.
CREATE INDEX workflow_runs_pending ON __schema__.workflow_runs (namespace, priority DESC, created_at, id)
    WHERE status = 'pending';
CREATE INDEX workflow_runs_pending_agent
    ON __schema__.workflow_runs (namespace, agent_id, priority DESC, created_at, id)
    WHERE status = 'pending';
CREATE INDEX workflow_runs_running ON __schema__.workflow_runs (namespace, heartbeat_at)
    WHERE status = 'running';
CREATE INDEX workflow_runs_list ON __schema__.workflow_runs (namespace, created_at DESC, id DESC);
CREATE INDEX workflow_runs_agent ON __schema__.workflow_runs (namespace, agent_id, created_at DESC);
CREATE INDEX workflow_runs_finished ON __schema__.workflow_runs (namespace, finished_at)
    WHERE status IN ('succeeded', 'failed', 'cancelled');

-- LangGraph: one row per checkpoint; channel values that are not primitives live in
-- lg_checkpoint_blobs keyed by version, so an unchanged channel is stored once.
CREATE TABLE __schema__.lg_checkpoints (
    namespace text NOT NULL,
    thread_id text NOT NULL,
    checkpoint_ns text NOT NULL DEFAULT '',
    -- "C" collation: checkpoint ids (UUIDv6) sort by time bytewise, whatever the locale.
    checkpoint_id text COLLATE "C" NOT NULL,
    parent_checkpoint_id text COLLATE "C",
    run_id text,
    type text NOT NULL,
    checkpoint bytea NOT NULL,
    blob_channels text[] NOT NULL DEFAULT '{}',
    blob_versions text[] NOT NULL DEFAULT '{}',
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id)
);
CREATE INDEX lg_checkpoints_run ON __schema__.lg_checkpoints (namespace, run_id) WHERE run_id IS NOT NULL;

CREATE TABLE __schema__.lg_checkpoint_blobs (
    namespace text NOT NULL,
    thread_id text NOT NULL,
    checkpoint_ns text NOT NULL DEFAULT '',
    channel text NOT NULL,
    version text NOT NULL,
    type text NOT NULL,
    blob bytea,
    PRIMARY KEY (namespace, thread_id, checkpoint_ns, channel, version)
);

CREATE TABLE __schema__.lg_checkpoint_writes (
    namespace text NOT NULL,
    thread_id text NOT NULL,
    checkpoint_ns text NOT NULL DEFAULT '',
    -- same collation as lg_checkpoints.checkpoint_id, so the join on it uses the key
    checkpoint_id text COLLATE "C" NOT NULL,
    task_id text NOT NULL,
    idx integer NOT NULL,
    channel text NOT NULL,
    type text NOT NULL,
    blob bytea NOT NULL,
    task_path text NOT NULL DEFAULT '',
    PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);
-- migrate:down
DROP TABLE __schema__.lg_checkpoint_writes;
DROP TABLE __schema__.lg_checkpoint_blobs;
DROP TABLE __schema__.lg_checkpoints;
DROP TABLE __schema__.workflow_runs;
DROP TABLE __schema__.agents;
