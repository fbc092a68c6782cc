-- Vectors: the catalog of collections. It needs no extension, so this migration applies
-- on any server. The item storage (__schema__.vector_items, which needs the pgvector type)
-- is created by the pgvector backend on the first vector_collection_create, because the
-- extension may be installed after the migrations ran; see docs/vectors.md.
-- migrate:up
CREATE TABLE __schema__.vector_collections (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace text NOT NULL,
    name text NOT NULL,
    dimensions integer NOT NULL CHECK (dimensions BETWEEN 1 AND 16000),
    distance text NOT NULL CHECK (distance IN ('cosine', 'l2', 'dot')),
    index_kind text NOT NULL CHECK (index_kind IN ('hnsw', 'none')),
    backend text NOT NULL CHECK (backend IN ('pgvector', 'weaviate')),
    text_search_config text NOT NULL,
    external_name text,
    options jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (namespace, name)
);
-- migrate:down
-- The storage the backend created lazily goes too (its per-collection indexes with it).
DROP TABLE IF EXISTS __schema__.vector_items;
DROP TABLE __schema__.vector_collections;
