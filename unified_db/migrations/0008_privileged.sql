-- Privileged steps the library runs at run time, for a role that may not run DDL itself
-- (`unified-db init --app-role`, docs/deployment.md): SECURITY DEFINER functions owned by
-- the migration runner (the schema owner). Each does one fixed thing to one table of this
-- schema. Nothing the caller passes is spliced into SQL: the caller gives a number or a
-- boolean; names come from the catalog and are quoted with format('%I'); numbers are
-- checked here. search_path is pinned so that no object of the caller's can stand in for a
-- built-in one. PUBLIC may not execute them (functions are executable by PUBLIC by
-- default); `init --app-role` grants EXECUTE to the app role, and the owner has it anyway.
-- migrate:up

-- pgvector's item table (see unified_db/vectors/pgvector.py), created when the extension is
-- installed; it is not part of 0007 because the extension may arrive after the migrations.
-- Installing the extension stays a superuser's (or the owner's) step. True when created now.
CREATE FUNCTION __schema__.vector_storage_ensure() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    ext name;
BEGIN
    IF to_regclass('__schema__.vector_items') IS NOT NULL THEN
        RETURN false;
    END IF;
    SELECT n.nspname INTO ext
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'vector';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the extension "vector" (pgvector) is not installed in this database'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    EXECUTE format(
        'CREATE TABLE __schema__.vector_items ('
        '    collection_id bigint NOT NULL'
        '        REFERENCES __schema__.vector_collections (id) ON DELETE CASCADE,'
        '    namespace text NOT NULL,'
        '    id text NOT NULL,'
        '    embedding %I.vector NOT NULL,'
        '    content text NOT NULL DEFAULT '''','
        '    metadata jsonb NOT NULL DEFAULT ''{}'','
        '    tsv tsvector NOT NULL,'
        '    updated_at timestamptz NOT NULL DEFAULT now(),'
        '    PRIMARY KEY (collection_id, id))', ext);
    CREATE INDEX vector_items_tsv ON __schema__.vector_items USING gin (tsv);
    RETURN true;
END
$fn$;

-- The partial HNSW index of one pgvector collection, from its catalog row: dimensions,
-- distance (-> a fixed operator class) and the m / ef_construction options. An invalid index
-- (an interrupted CREATE INDEX CONCURRENTLY) is dropped and rebuilt. Not concurrent (a
-- function runs inside a transaction): writes to vector_items wait until it is built.
-- True when built, false when a valid one exists or the collection has no HNSW index.
CREATE FUNCTION __schema__.vector_index_build(collection_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    c record;
    ext name;
    opclass text;
    m integer;
    ef integer;
    index_name text := 'vector_items_hnsw_' || collection_id;
    valid boolean;
BEGIN
    SELECT v.dimensions, v.distance, v.index_kind, v.backend, v.options INTO c
      FROM __schema__.vector_collections v WHERE v.id = collection_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no vector collection has id %', collection_id USING ERRCODE = 'no_data_found';
    END IF;
    IF c.backend <> 'pgvector' OR c.index_kind <> 'hnsw' THEN
        RETURN false;
    END IF;
    opclass := CASE c.distance WHEN 'cosine' THEN 'vector_cosine_ops'
                               WHEN 'l2' THEN 'vector_l2_ops'
                               WHEN 'dot' THEN 'vector_ip_ops' END;
    m := coalesce((c.options ->> 'm')::integer, 16);
    ef := coalesce((c.options ->> 'ef_construction')::integer, 64);
    IF opclass IS NULL OR c.dimensions NOT BETWEEN 1 AND 2000 OR m NOT BETWEEN 2 AND 100
       OR ef NOT BETWEEN 4 AND 1000 OR ef < 2 * m THEN
        RAISE EXCEPTION 'vector collection % has no valid HNSW definition', collection_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT i.indisvalid INTO valid FROM pg_index i
     WHERE i.indexrelid = to_regclass(format('__schema__.%I', index_name));
    IF valid THEN
        RETURN false;
    ELSIF valid IS NOT NULL THEN
        EXECUTE format('DROP INDEX __schema__.%I', index_name);
    END IF;
    SELECT n.nspname INTO ext
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'vector';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the extension "vector" (pgvector) is not installed in this database'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    EXECUTE format(
        'CREATE INDEX %I ON __schema__.vector_items USING hnsw ((embedding::%I.vector(%s)) %I.%I)'
        ' WITH (m = %s, ef_construction = %s) WHERE collection_id = %s',
        index_name, ext, c.dimensions, ext, opclass, m, ef, collection_id);
    RETURN true;
END
$fn$;

-- The HNSW index of a dropped collection (its catalog row already deleted, in this
-- transaction or before). The index of a live collection is refused.
CREATE FUNCTION __schema__.vector_index_drop(collection_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF collection_id IS NULL OR collection_id < 1 THEN
        RAISE EXCEPTION 'collection id must be a positive integer (got %)', collection_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM __schema__.vector_collections v WHERE v.id = collection_id) THEN
        RAISE EXCEPTION 'vector collection % still exists: delete its catalog row first', collection_id
            USING ERRCODE = 'object_in_use';
    END IF;
    EXECUTE format('DROP INDEX IF EXISTS __schema__.%I', 'vector_items_hnsw_' || collection_id);
END
$fn$;

-- The cache table logged (crash-safe, replicated) or UNLOGGED (fast); a rewrite under an
-- ACCESS EXCLUSIVE lock. True when it changed.
CREATE FUNCTION __schema__.cache_set_durable(durable boolean) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF durable IS NULL THEN
        RAISE EXCEPTION 'durable must be true or false' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT c.relpersistence = 'p' FROM pg_class c
         WHERE c.oid = '__schema__.cache_entries'::regclass) = durable THEN
        RETURN false;
    END IF;
    IF durable THEN
        ALTER TABLE __schema__.cache_entries SET LOGGED;
    ELSE
        ALTER TABLE __schema__.cache_entries SET UNLOGGED;
    END IF;
    RETURN true;
END
$fn$;

-- ANALYZE of one of the high-churn tables `unified-db maintain` looks after (the list is
-- CHURN_TABLES in unified_db/extensions/_pool_logic.py). VACUUM cannot run in a function:
-- a role that neither owns them nor holds MAINTAIN (PostgreSQL 17+) gets ANALYZE only.
CREATE FUNCTION __schema__.maintain_analyze(table_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF table_name IS NULL OR NOT table_name = ANY (
        ARRAY['cache_entries', 'sessions', 'memory_snapshots', 'workflow_runs', 'instance_stats']) THEN
        RAISE EXCEPTION 'maintain_analyze: % is not one of the churn tables', quote_literal(table_name)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('ANALYZE __schema__.%I', table_name);
END
$fn$;

REVOKE EXECUTE ON FUNCTION __schema__.vector_storage_ensure() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION __schema__.vector_index_build(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION __schema__.vector_index_drop(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION __schema__.cache_set_durable(boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION __schema__.maintain_analyze(text) FROM PUBLIC;
-- migrate:down
DROP FUNCTION __schema__.maintain_analyze(text);
DROP FUNCTION __schema__.cache_set_durable(boolean);
DROP FUNCTION __schema__.vector_index_drop(bigint);
DROP FUNCTION __schema__.vector_index_build(bigint);
DROP FUNCTION __schema__.vector_storage_ensure();
