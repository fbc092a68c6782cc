-- Memory snapshots: immutable, versioned copies of an agent's state, searchable by full text.
-- migrate:up

-- The string values of a state (in jsonb key order), joined by newlines. Used to index and to
-- excerpt states too large for jsonb_to_tsvector (a tsvector is limited to 1 MB).
CREATE FUNCTION __schema__.memory_state_text(state jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT coalesce(string_agg(v #>> '{}', E'\n'), '')
      FROM jsonb_path_query(state, 'strict $.** ? (@.type() == "string")') AS v
$$;

-- The search document: label (weight A), tags (B) and every string value of the state (D).
-- A tsvector is limited to 1 MB of lexemes. States whose JSON is at most 256 KiB are
-- indexed whole; larger ones by a prefix of their string values of at most 256 KiB:
-- 262144 characters, or 65536 when those would take more bytes (multi-byte text).
CREATE FUNCTION __schema__.memory_snapshot_tsv(label text, tags text[], state jsonb, size_bytes bigint)
RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('english'::regconfig, coalesce(label, '')), 'A')
        || setweight(to_tsvector('english'::regconfig, coalesce(array_to_string(tags, ' '), '')), 'B')
        || CASE WHEN size_bytes <= 262144
                THEN jsonb_to_tsvector('english'::regconfig, state, '["string"]')
                ELSE (SELECT to_tsvector('english'::regconfig,
                                         CASE WHEN octet_length(p) <= 262144 THEN p ELSE left(p, 65536) END)
                        FROM (SELECT left(__schema__.memory_state_text(state), 262144) AS p) AS prefix)
           END
$$;

-- One row per agent: the last version handed out. Writers serialize on this row, which makes
-- versions gap-free without a table lock; a deleted snapshot's version is never reused.
CREATE TABLE __schema__.memory_snapshot_heads (
    namespace text NOT NULL,
    agent_id text NOT NULL,
    version integer NOT NULL,
    PRIMARY KEY (namespace, agent_id)
);

CREATE TABLE __schema__.memory_snapshots (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace text NOT NULL,
    agent_id text NOT NULL,
    version integer NOT NULL,
    state jsonb NOT NULL,
    label text,
    tags text[] NOT NULL DEFAULT '{}',
    metadata jsonb NOT NULL DEFAULT '{}',
    size_bytes bigint NOT NULL,
    restored_from bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    search tsvector GENERATED ALWAYS AS
        (__schema__.memory_snapshot_tsv(label, tags, state, size_bytes)) STORED,
    CONSTRAINT memory_snapshots_agent_version UNIQUE (namespace, agent_id, version)
);
-- Keyset pagination (newest first) over one agent and over the whole namespace.
CREATE INDEX memory_snapshots_agent_id ON __schema__.memory_snapshots (namespace, agent_id, id);
CREATE INDEX memory_snapshots_namespace_id ON __schema__.memory_snapshots (namespace, id);
CREATE INDEX memory_snapshots_search ON __schema__.memory_snapshots USING gin (search);

-- migrate:down
DROP TABLE __schema__.memory_snapshots;
DROP TABLE __schema__.memory_snapshot_heads;
DROP FUNCTION __schema__.memory_snapshot_tsv(text, text[], jsonb, bigint);
DROP FUNCTION __schema__.memory_state_text(jsonb);
