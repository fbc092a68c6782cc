"""The pgvector backend: items in ``__schema__.vector_items`` beside the rest of the data.

Layout. One table holds every collection's items with an untyped ``vector`` column;
each collection with ``index="hnsw"`` gets a partial expression index::

    CREATE INDEX vector_items_hnsw_<id> ON vector_items
        USING hnsw ((embedding::vector(<dims>)) vector_cosine_ops) WHERE collection_id = <id>

which is how pgvector indexes vectors of several sizes in one column. A search must
repeat that expression and that predicate literally for the planner to pick the index,
so the search statements are rendered per collection from the catalog's *integers*
(id, dimensions) and an operator taken from a fixed table, never from caller text.
Everything else (upsert, get, delete, count) is a constant statement with parameters.

Vectors cross the wire as ``real[]`` (asyncpg's binary float4 array codec, in C) and are
cast to ``vector`` by the server, so no per-connection codec is needed: connections
opened before ``CREATE EXTENSION vector`` work the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ..errors import ConflictError, FeatureUnavailableError, InvalidInputError, UnifiedDBError
from . import catalog
from .base import (
    CollectionInfo,
    CollectionSpec,
    PreparedBatch,
    StaleCollectionError,
    VectorBackend,
    VectorHit,
    VectorRecord,
    score_from_distance,
)

if TYPE_CHECKING:
    from ..core import Conn
    from ..extensions._protocol import DBProtocol

# distance -> (operator, HNSW operator class)
OPERATORS: dict[str, tuple[str, str]] = {
    "cosine": ("<=>", "vector_cosine_ops"),
    "l2": ("<->", "vector_l2_ops"),
    "dot": ("<#>", "vector_ip_ops"),
}

INSTALL_HINT = (
    "install pgvector on the server (https://github.com/pgvector/pgvector#installation; "
    "on Debian/Ubuntu: apt install postgresql-<major>-pgvector), then have a superuser run "
    "CREATE EXTENSION vector in this database; or leave the DSN unset to use the embedded "
    "PostgreSQL, which ships it"
)

EXTENSION_STATUS = (
    "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS installed,"
    " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') AS available,"
    " to_regclass('__schema__.vector_items') IS NOT NULL AS storage"
)
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('unified_db:vectors:' || $1, 0))"
CREATE_EXTENSION = "CREATE EXTENSION IF NOT EXISTS vector"
# The DDL (the item table, a collection's index) runs in SECURITY DEFINER functions of
# 0008_privileged.sql, owned by the schema owner: the same statements serve the owner and
# a role without DDL rights (``init --app-role``). The item table is created at run time
# because it needs the extension, which may arrive after the migrations ran.
ENSURE_STORAGE = "SELECT __schema__.vector_storage_ensure()"
# Reads dimensions, distance, m and ef_construction from the catalog row itself.
BUILD_INDEX = "SELECT __schema__.vector_index_build($1)"
# The index of a collection whose catalog row is gone (refused for a live one).
DROP_INDEX = "SELECT __schema__.vector_index_drop($1)"
# DDL on the shared table queues behind running writes and blocks new ones while it
# waits: give up after a while rather than stall every collection.
LOCK_TIMEOUT = "SELECT set_config('lock_timeout', '10s', true)"
BUILD_MEMORY = "SELECT set_config('maintenance_work_mem', $1, false)"
TS_CONFIG_EXISTS = "SELECT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = $1)"

UPSERT = """
INSERT INTO __schema__.vector_items AS i
    (collection_id, namespace, id, embedding, content, metadata, tsv)
SELECT c.id, c.namespace, u.id,
       ($4::real[])[(u.ord - 1) * c.dimensions + 1 : u.ord * c.dimensions]::vector,
       u.content, u.metadata, to_tsvector(c.text_search_config::regconfig, u.content)
  FROM __schema__.vector_collections c,
       unnest($3::text[], $5::text[], $6::jsonb[]) WITH ORDINALITY AS u(id, content, metadata, ord)
 WHERE c.id = $2 AND c.namespace = $1
ON CONFLICT (collection_id, id) DO UPDATE
   SET embedding = EXCLUDED.embedding, content = EXCLUDED.content,
       metadata = EXCLUDED.metadata, tsv = EXCLUDED.tsv, updated_at = now()
"""
# A collection row with its item (or NULLs): no row at all means the collection is gone.
GET = """
SELECT i.id, i.embedding::real[] AS embedding, i.content, i.metadata
  FROM __schema__.vector_collections c
  LEFT JOIN __schema__.vector_items i
         ON i.collection_id = c.id AND i.namespace = c.namespace AND i.id = $3
 WHERE c.id = $2 AND c.namespace = $1
"""
DELETE = """
WITH c AS (SELECT id FROM __schema__.vector_collections WHERE id = $2 AND namespace = $1),
     d AS (DELETE FROM __schema__.vector_items i USING c
            WHERE i.collection_id = c.id AND i.namespace = $1 AND i.id = ANY($3::text[])
           RETURNING 1)
SELECT (SELECT count(*) FROM c) AS found, (SELECT count(*) FROM d) AS deleted
"""
# One item copied to a new id inside the server (reserved collections: a restored snapshot
# keeps its embedding). Nothing is inserted when the source item is absent.
COPY = """
INSERT INTO __schema__.vector_items AS i
    (collection_id, namespace, id, embedding, content, metadata, tsv)
SELECT s.collection_id, s.namespace, $4, s.embedding, s.content, s.metadata, s.tsv
  FROM __schema__.vector_items s
 WHERE s.collection_id = $2 AND s.namespace = $1 AND s.id = $3
ON CONFLICT (collection_id, id) DO UPDATE
   SET embedding = EXCLUDED.embedding, content = EXCLUDED.content,
       metadata = EXCLUDED.metadata, tsv = EXCLUDED.tsv, updated_at = now()
"""
COUNT = """
SELECT (SELECT count(*) FROM __schema__.vector_items i
         WHERE i.collection_id = c.id AND i.namespace = c.namespace) AS n
  FROM __schema__.vector_collections c
 WHERE c.id = $2 AND c.namespace = $1
"""


# Every field of the filter parameter {"field": [allowed, ...]} must match; $F is its number.
_FILTER = """
   AND NOT EXISTS (
       SELECT 1 FROM jsonb_each($F::jsonb) AS f(key, allowed)
        WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(f.allowed) AS a(v)
                           WHERE a.v = i.metadata -> f.key))"""


def _filter_sql(param: int) -> str:
    return _FILTER.replace("$F", "$" + str(_ident_int(param)))


def _ident_int(value: int) -> int:
    # The only values rendered into SQL: integers from our own catalog.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UnifiedDBError(f"internal: expected a non-negative integer, got {value!r}")
    return value


def _distance_expr(info: CollectionInfo, *, exact: bool) -> str:
    op, _ = OPERATORS[info.distance]
    if exact:  # an expression the index does not match: a sequential scan and a top-N sort
        return f"(i.embedding {op} $2::real[]::vector)"
    dims = _ident_int(info.dimensions)
    return f"(i.embedding::vector({dims}) {op} $2::real[]::vector({dims}))"


def index_name(info: CollectionInfo) -> str:
    return f"vector_items_hnsw_{_ident_int(info.id)}"


def create_index_sql(info: CollectionInfo, m: int, ef_construction: int) -> str:
    """The partial HNSW index of one collection, built CONCURRENTLY (the owner's deferred
    build; vector_index_build() renders the same index inside the server otherwise).
    Integers and a fixed operator class only."""
    _, opclass = OPERATORS[info.distance]
    return (
        f"CREATE INDEX CONCURRENTLY {index_name(info)} ON __schema__.vector_items USING hnsw "
        f"((embedding::vector({_ident_int(info.dimensions)})) {opclass}) "
        f"WITH (m = {_ident_int(m)}, ef_construction = {_ident_int(ef_construction)}) "
        f"WHERE collection_id = {_ident_int(info.id)}"
    )


def drop_index_sql(info: CollectionInfo) -> str:
    return f"DROP INDEX CONCURRENTLY IF EXISTS __schema__.{index_name(info)}"


# The index's state (valid: NULL when absent) and whether this role owns the item table,
# which CREATE INDEX CONCURRENTLY needs (it cannot run inside a function).
INDEX_STATE = """
SELECT (SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)) AS valid,
       coalesce((SELECT pg_has_role(relowner, 'USAGE') FROM pg_class
                  WHERE oid = to_regclass('__schema__.vector_items')), false) AS owner
"""


# The HNSW settings of one statement. set_config(..., true) lasts until the end of the
# (implicit) transaction, so nothing leaks to the pooled session; and the pseudo-constant
# condition on it becomes a One-Time Filter, which the executor evaluates before the
# index scan fetches its first row, which is when pgvector reads the settings. Session
# SETs would not do: the pool's RESET ALL on release wipes them.
_CFG = (
    "WITH cfg AS MATERIALIZED (SELECT set_config('hnsw.ef_search', $4, true) IS NOT NULL"
    " AND set_config('hnsw.iterative_scan', $5, true) IS NOT NULL AS ok) "
)


def search_sql(info: CollectionInfo, *, filtered: bool, exact: bool) -> str:
    """Nearest items of one collection, plus one marker row (id NULL) when it still exists.

    $1 namespace, $2 query vector (real[]), $3 limit, $4 ef_search, $5 iterative scan
    mode, $6 filter (when *filtered*).
    """
    cid = _ident_int(info.id)
    dist = _distance_expr(info, exact=exact)
    return (
        _CFG + f"(SELECT i.id, i.content, i.metadata, {dist} AS distance"  # noqa: S608 - integers only
        f"   FROM __schema__.vector_items i"
        f"  WHERE i.collection_id = {cid} AND i.namespace = $1 AND (SELECT ok FROM cfg)"
        f"{_filter_sql(6) if filtered else ''}"
        f"  ORDER BY {dist} LIMIT $3)"
        f" UNION ALL"
        f" SELECT NULL, NULL, NULL, NULL FROM __schema__.vector_collections"
        f"  WHERE id = {cid} AND namespace = $1"
    )


def hybrid_sql(info: CollectionInfo, *, filtered: bool = False) -> str:
    """Both rankings of a hybrid search in one round trip, plus the marker row.

    $1 namespace, $2 query vector, $3 candidates per ranking, $4 ef_search, $5 iterative
    scan mode, $6 text search config, $7 text, $8 filter (when *filtered*). Column
    ``src``: 'v' vector ranking, 't' full-text ranking, 'c' the collection exists.
    """
    cid = _ident_int(info.id)
    dist = _distance_expr(info, exact=False)
    flt = _filter_sql(8) if filtered else ""
    return (
        _CFG + f"(SELECT 'v' AS src, i.id, i.content, i.metadata, {dist} AS rank"  # noqa: S608 - integers only
        f"   FROM __schema__.vector_items i"
        f"  WHERE i.collection_id = {cid} AND i.namespace = $1 AND (SELECT ok FROM cfg){flt}"
        f"  ORDER BY {dist} LIMIT $3)"
        f" UNION ALL"
        f" (SELECT 't', i.id, i.content, i.metadata, -ts_rank_cd(i.tsv, q)::float8"
        f"   FROM __schema__.vector_items i, websearch_to_tsquery($6::regconfig, $7) AS q"
        f"  WHERE i.collection_id = {cid} AND i.namespace = $1 AND i.tsv @@ q{flt}"
        f"  ORDER BY 5, 2 LIMIT $3)"
        f" UNION ALL"
        f" SELECT 'c', NULL, NULL, NULL, NULL FROM __schema__.vector_collections"
        f"  WHERE id = {cid} AND namespace = $1"
    )


@asynccontextmanager
async def _ddl_lock_timeout_is_conflict(what: str) -> AsyncIterator[None]:
    try:
        yield
    except UnifiedDBError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == "55P03":
            raise ConflictError(
                f"{what}: the vector table stayed locked by other transactions (a long vector_upsert?) "
                "for 10 s; retry"
            ) from exc
        raise


def _rows_or_stale(rows: list[Any], marker_col: str = "id") -> list[Any]:
    if not any(r[marker_col] is None for r in rows):
        raise StaleCollectionError
    return [r for r in rows if r[marker_col] is not None]


def _status_count(status: str) -> int:
    # "INSERT 0 42" -> 42
    return int(status.rsplit(" ", 1)[-1])


class PgVectorBackend(VectorBackend):
    """Items in PostgreSQL with pgvector: the default, in the same database as the rest."""

    name = "pgvector"

    def __init__(self, db: DBProtocol) -> None:
        self.db = db
        self._storage_ready = False

    def _unavailable(self, available: bool) -> FeatureUnavailableError:
        if available:
            return FeatureUnavailableError(
                "vectors need the PostgreSQL extension `vector` (pgvector): it is available on this "
                "server but not installed in this database, and this role may not install it; have "
                "a superuser run CREATE EXTENSION vector in this database"
            )
        return FeatureUnavailableError(
            "vectors need the PostgreSQL extension `vector` (pgvector), which this server lacks: "
            + INSTALL_HINT
        )

    async def check_available(self) -> None:
        if self._storage_ready:
            return
        row = await self.db._fetchrow(EXTENSION_STATUS)
        if row["installed"] is None and not row["available"]:
            raise self._unavailable(False)
        if row["storage"]:
            self._storage_ready = True

    async def _ensure_storage(self, con: Conn) -> None:
        await con.execute(LOCK_TIMEOUT)
        await con.execute(LOCK, self.db.schema)
        row = await con.fetchrow(EXTENSION_STATUS)
        if row["storage"]:
            return
        if row["installed"] is None:
            if not row["available"]:
                raise self._unavailable(False)
            try:
                async with con.raw.transaction():  # a savepoint: a refusal must not abort ours
                    await con.execute(CREATE_EXTENSION)
            except UnifiedDBError as exc:
                raise self._unavailable(True) from exc
        await con.execute(ENSURE_STORAGE)

    async def create_collection(self, spec: CollectionSpec, *, exist_ok: bool) -> CollectionInfo:
        async with _ddl_lock_timeout_is_conflict("vector_collection_create"), self.db._transaction() as con:
            await self._ensure_storage(con)
            if not await con.fetchval(TS_CONFIG_EXISTS, spec.text_search_config):
                raise InvalidInputError(
                    f"text_search_config {spec.text_search_config!r} is not a text search configuration "
                    "of this server (see \\dF in psql; 'simple' always exists)"
                )
            info, created = await catalog.insert(
                con, self.db.namespace, spec, self.name, None, exist_ok=exist_ok
            )
            if created and spec.index == "hnsw" and spec.build_index:
                await con.execute(BUILD_INDEX, info.id)
        self._storage_ready = True
        return info

    async def drop_collection(self, info: CollectionInfo) -> None:
        async with _ddl_lock_timeout_is_conflict("vector_collection_drop"), self.db._transaction() as con:
            await con.execute(LOCK_TIMEOUT)
            # Items go by ON DELETE CASCADE; the index last, so its exclusive lock on the
            # shared table is held only for the moment before commit.
            status = await con.execute(catalog.DELETE, self.db.namespace, info.id)
            if _status_count(status) == 0:
                raise StaleCollectionError
            await con.execute(DROP_INDEX, info.id)

    async def build_index(self, info: CollectionInfo, *, timeout: float) -> bool:
        if info.index != "hnsw":
            return False
        async with self.db._acquire() as con:
            if await con.fetchval(catalog.EXISTS, self.db.namespace, info.id) is None:
                raise StaleCollectionError
            state = await con.fetchrow(INDEX_STATE, self.db._sql("__schema__." + index_name(info)))
            if state["valid"]:
                return False
            # Session settings are fine here: the pool's RESET ALL clears them on release.
            await con.execute(BUILD_MEMORY, self.db.settings.vector_index_build_memory)
            if not state["owner"]:
                # A role without DDL rights builds through vector_index_build(): inside a
                # function, so not concurrently: writes to vector_items wait meanwhile.
                what = "vector_collection_build_index"
                async with _ddl_lock_timeout_is_conflict(what), con.raw.transaction():
                    await con.execute(LOCK_TIMEOUT)
                    return bool(await con.fetchval(BUILD_INDEX, info.id, timeout=timeout))
            if state["valid"] is not None:  # an interrupted CONCURRENTLY build leaves an invalid index
                await con.execute(drop_index_sql(info), timeout=timeout)
            # CONCURRENTLY: writes to every collection go on while the graph is built.
            await con.execute(
                create_index_sql(info, info.options.get("m", 16), info.options.get("ef_construction", 64)),
                timeout=timeout,
            )
        return True

    async def upsert(self, info: CollectionInfo, batch: PreparedBatch, batch_size: int) -> int:
        if len(batch) <= batch_size:
            return await self._upsert_one(self.db, info, batch)
        total = 0
        async with self.db._transaction() as con:  # all batches or none
            for start in range(0, len(batch), batch_size):
                total += await self._upsert_one(con, info, batch.slice(start, start + batch_size))
        return total

    async def upsert_on(self, con: Conn | None, info: CollectionInfo, batch: PreparedBatch) -> int:
        """One batch on *con* (in the caller's transaction), or on a pooled connection."""
        return await self._upsert_one(self.db if con is None else con, info, batch)

    async def _upsert_one(self, runner: Any, info: CollectionInfo, batch: PreparedBatch) -> int:
        args = (
            self.db.namespace,
            info.id,
            batch.ids,
            batch.flat_embeddings(),
            batch.contents,
            batch.metadata,
        )
        try:
            if runner is self.db:
                status = await self.db._execute(UPSERT, *args)
            else:
                status = await runner.execute(UPSERT, *args)
        except UnifiedDBError as exc:
            if getattr(exc.__cause__, "sqlstate", None) == "23503":  # dropped while we wrote
                raise StaleCollectionError from exc
            raise
        n = _status_count(status)
        if n == 0 and len(batch):
            raise StaleCollectionError
        return n

    async def search(
        self,
        info: CollectionInfo,
        embedding: list[float],
        *,
        k: int,
        filter: dict[str, list[Any]] | None,
        exact: bool,
        ef_search: int | None,
    ) -> list[VectorHit]:
        sql = search_sql(info, filtered=filter is not None, exact=exact)
        # An HNSW scan returns at most ef_search rows: never fewer candidates than k.
        ef = str(max(ef_search or self.db.settings.vector_ef_search, k))
        # A filter may reject most of the ef_search candidates: let pgvector keep scanning.
        args: tuple[Any, ...] = (self.db.namespace, embedding, k, ef, "relaxed_order" if filter else "off")
        if filter is not None:
            args += (filter,)
        rows = _rows_or_stale(await self.db._fetch(sql, *args))
        # Iterative index scans may return near-sorted rows; order exactly here.
        rows.sort(key=lambda r: r["distance"])
        return [
            VectorHit(
                id=r["id"],
                score=score_from_distance(info.distance, r["distance"]),
                content=r["content"],
                metadata=r["metadata"],
            )
            for r in rows
        ]

    async def hybrid_rankings(
        self,
        info: CollectionInfo,
        text: str,
        embedding: list[float],
        *,
        candidates: int,
        filter: dict[str, list[Any]] | None = None,
    ) -> tuple[list[str], list[str], dict[str, tuple[str, dict[str, Any]]]]:
        args: tuple[Any, ...] = (
            self.db.namespace,
            embedding,
            candidates,
            str(max(candidates, self.db.settings.vector_ef_search)),
            "relaxed_order" if filter else "off",
            info.text_search_config,
            text,
        )
        if filter is not None:
            args += (filter,)
        rows = await self.db._fetch(hybrid_sql(info, filtered=filter is not None), *args)
        if not any(r["src"] == "c" for r in rows):
            raise StaleCollectionError
        payload: dict[str, tuple[str, dict[str, Any]]] = {}
        rankings: dict[str, list[tuple[float, str]]] = {"v": [], "t": []}
        for r in rows:
            if r["src"] == "c":
                continue
            rankings[r["src"]].append((r["rank"], r["id"]))
            payload[r["id"]] = (r["content"], r["metadata"])
        vector = [i for _, i in sorted(rankings["v"], key=lambda t: t[0])]
        textual = [i for _, i in sorted(rankings["t"], key=lambda t: (t[0], t[1]))]
        return vector, textual, payload

    async def get(self, info: CollectionInfo, item_id: str) -> VectorRecord | None:
        row = await self.db._fetchrow(GET, self.db.namespace, info.id, item_id)
        if row is None:
            raise StaleCollectionError
        if row["id"] is None:
            return None
        return VectorRecord(
            id=row["id"], embedding=row["embedding"], content=row["content"], metadata=row["metadata"]
        )

    async def delete(self, info: CollectionInfo, ids: list[str], *, con: Conn | None = None) -> int:
        if con is None:
            row = await self.db._fetchrow(DELETE, self.db.namespace, info.id, ids, write=True)
        else:
            row = await con.fetchrow(DELETE, self.db.namespace, info.id, ids)
        if not row["found"]:
            raise StaleCollectionError
        return row["deleted"]

    async def copy(
        self, info: CollectionInfo, source_id: str, target_id: str, *, con: Conn | None = None
    ) -> bool:
        """Copy item *source_id* to *target_id* (replacing it); False when the source is absent."""
        args = (self.db.namespace, info.id, source_id, target_id)
        status = await (self.db._execute(COPY, *args) if con is None else con.execute(COPY, *args))
        return _status_count(status) == 1

    async def count(self, info: CollectionInfo) -> int:
        row = await self.db._fetchrow(COUNT, self.db.namespace, info.id)
        if row is None:
            raise StaleCollectionError
        return row["n"]
