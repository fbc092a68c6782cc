"""VectorMixin: collections of embeddings with semantic, filtered and hybrid search.

Every argument is validated (``unified_db.vectors.base``) before anything is written:
plain arguments before any I/O, embeddings against the collection's catalog row (read
once, then cached). Then the call goes to the configured backend (``vector_backend``:
pgvector by default, or weaviate). The long-lived part (the backend, its client and the
cache of catalog rows) is the ``vectors`` component, which the base starts and closes;
see docs/vectors.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..core import operation
from ..errors import ConflictError, InvalidInputError, NotFoundError, PoolClosedError
from ..vectors import base as vb
from ..vectors import catalog
from ..vectors.base import (
    CollectionInfo,
    StaleCollectionError,
    VectorBackend,
    VectorCollection,
    VectorHit,
    VectorRecord,
)

if TYPE_CHECKING:
    from ..core import Conn, UnifiedPostgreSQL
    from ..vectors.pgvector import PgVectorBackend
    from ._protocol import DBProtocol
    from ._protocol import DBProtocol as _Base
else:
    _Base = object

T = TypeVar("T")

#: Collection names starting with "_" are reserved for other features (memory snapshots).
SNAPSHOT_COLLECTION = "_memory_snapshots"


class VectorState:
    """The ``vectors`` component: the backend and the catalog rows seen so far."""

    def __init__(self, db: DBProtocol) -> None:
        self.db = db
        self.backend: VectorBackend
        if db.settings.vector_backend == "weaviate":
            from ..vectors.weaviate import WeaviateBackend

            self.backend = WeaviateBackend(db)
        else:
            from ..vectors.pgvector import PgVectorBackend

            self.backend = PgVectorBackend(db)
        self._pgvector: PgVectorBackend | None = None
        # reserved collection name -> catalog row (always a pgvector collection)
        self.reserved: dict[str, CollectionInfo] = {}
        # name -> catalog row; rows never change for an id, so entries only go stale
        # (dropped), which the backends detect and report as StaleCollectionError.
        self.collections: dict[str, CollectionInfo] = {}

    @property
    def reserved_backend(self) -> PgVectorBackend:
        """The pgvector backend, which holds reserved collections whatever vector_backend is."""
        from ..vectors.pgvector import PgVectorBackend

        if isinstance(self.backend, PgVectorBackend):
            return self.backend
        if self._pgvector is None:
            self._pgvector = PgVectorBackend(self.db)
        return self._pgvector

    async def start(self) -> None:
        """Nothing to do at open: a missing extension or server must not stop the rest."""

    async def close(self) -> None:
        self.collections.clear()
        self.reserved.clear()
        await self.backend.close()
        if self._pgvector is not None:
            await self._pgvector.close()


def _make_state(db: UnifiedPostgreSQL) -> VectorState:
    return VectorState(db)  # type: ignore[arg-type]


class VectorMixin(_Base):
    """Vector collections: ``vector_collection_create``, ``vector_upsert``, ``vector_search`` ..."""

    component_factories = {"vectors": _make_state}

    # ------------------------------------------------------------------ internals

    def _vector_state(self) -> VectorState:
        state = self._component("vectors")
        if state is None:
            raise PoolClosedError(
                "this UnifiedDB is not open: use `async with UnifiedDB(...) as db` or await db.open()"
            )
        return state

    async def _vector_info(self, state: VectorState, name: str, *, refresh: bool = False) -> CollectionInfo:
        info = None if refresh else state.collections.get(name)
        if info is not None:
            return info
        info = await catalog.get(self, self.namespace, name)
        if info is None or info.backend != state.backend.name:
            state.collections.pop(name, None)
            await state.backend.check_available()
            if info is not None:
                raise NotFoundError(
                    f"vector collection {name!r} belongs to the {info.backend} backend, but this instance "
                    f"uses vector_backend={state.backend.name!r}"
                )
            raise NotFoundError(
                f"no vector collection {name!r} in namespace {self.namespace!r}; "
                "create it with vector_collection_create"
            )
        state.collections[name] = info
        return info

    async def _vector_call(self, name: str, fn: Callable[[VectorBackend, CollectionInfo], Awaitable[T]]) -> T:
        """Run *fn* on the collection; once more with a fresh catalog row if it was stale."""
        state = self._vector_state()
        info = await self._vector_info(state, name)
        try:
            return await fn(state.backend, info)
        except StaleCollectionError:
            state.collections.pop(name, None)
        info = await self._vector_info(state, name, refresh=True)
        try:
            return await fn(state.backend, info)
        except StaleCollectionError:
            state.collections.pop(name, None)
            raise NotFoundError(f"vector collection {name!r} was dropped meanwhile") from None

    @staticmethod
    def _vector_query(embedding: object, info: CollectionInfo) -> list[float]:
        vec = vb.check_embedding(embedding, info.dimensions)
        if info.distance == "cosine" and not any(vec):
            raise InvalidInputError("embedding is the zero vector, which has no cosine distance to anything")
        return vec

    # ------------------------------------------------------------------ collections

    @operation("vector_collection_create")
    async def vector_collection_create(
        self,
        name: str,
        dimensions: int,
        *,
        distance: str = "cosine",
        index: str = "hnsw",
        text_search_config: str = "english",
        m: int = 16,
        ef_construction: int = 64,
        build_index: bool = True,
        exist_ok: bool = False,
    ) -> VectorCollection:
        """Create a collection of *dimensions*-long embeddings.

        distance: "cosine" (default), "l2" or "dot". index: "hnsw" (approximate, fast) or
        "none" (exact scans; right for a few thousand items). text_search_config: the
        PostgreSQL text search configuration used by hybrid search. m, ef_construction:
        HNSW build parameters. build_index=False defers the HNSW index to
        :meth:`vector_collection_build_index`, which is several times faster after a large
        initial load (searches scan exactly until then). With *exist_ok*, an existing
        collection with the same definition is returned instead of raising ConflictError.

        Raises InvalidInputError, ConflictError, FeatureUnavailableError (no pgvector).
        One transaction of 4-6 statements (the first call also creates the storage).
        """
        spec = vb.check_collection_spec(
            name, dimensions, distance, index, text_search_config, m, ef_construction, build_index=build_index
        )
        if not isinstance(exist_ok, bool):
            raise InvalidInputError(f"exist_ok must be True or False (got {exist_ok!r})")
        state = self._vector_state()
        info = await state.backend.create_collection(spec, exist_ok=exist_ok)
        state.collections[info.name] = info
        return info.public()

    @operation("vector_collection_drop")
    async def vector_collection_drop(self, name: str) -> None:
        """Drop a collection and all its items. Raises NotFoundError. One transaction."""
        vb.check_name(name)
        state = self._vector_state()
        await self._vector_call(name, lambda backend, info: backend.drop_collection(info))
        state.collections.pop(name, None)

    @operation("vector_collection_build_index")
    async def vector_collection_build_index(self, name: str, *, timeout: float = 3600.0) -> bool:
        """Build the HNSW index of a collection created with ``build_index=False``.

        Returns True when an index was built, False when there was nothing to do (already
        built, or ``index="none"``). Built with ``vector_index_build_memory`` of
        maintenance_work_mem, CONCURRENTLY (writes go on meanwhile) by the owner of
        ``vector_items``; a role without DDL rights (``init --app-role``) builds through the
        owner's ``vector_index_build()`` function, which cannot be concurrent: writes to
        vector_items wait until it is built. An interrupted build is cleaned up and redone.
        timeout: seconds the build may take (default one hour). Raises NotFoundError,
        OperationTimeoutError, ConflictError (non-concurrent build: a write held the table
        for 10 s). Three to five statements.
        """
        vb.check_name(name)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise InvalidInputError(f"timeout must be a positive number of seconds (got {timeout!r})")
        return await self._vector_call(
            name, lambda backend, info: backend.build_index(info, timeout=float(timeout))
        )

    @operation("vector_collections")
    async def vector_collections(self) -> list[VectorCollection]:
        """The collections of this namespace, by name. One round trip (two on a server
        without pgvector, which raises FeatureUnavailableError)."""
        state = self._vector_state()
        infos = await catalog.list_all(self, self.namespace)
        if not infos:
            await state.backend.check_available()
        return [i.public() for i in infos if not i.name.startswith("_")]  # reserved: other features

    # ------------------------------------------------------------------ items

    @operation("vector_upsert")
    async def vector_upsert(self, collection: str, items: Any) -> int:
        """Insert or replace items; returns how many were written.

        items: VectorItem objects or dicts with ``id`` (str), ``embedding`` (list of floats
        or a numpy array), ``content`` (text, used by hybrid search) and ``metadata`` (a JSON
        object). Every item is validated first: a bad one raises InvalidInputError and
        nothing is written. Raises NotFoundError for an unknown collection.
        One round trip per ``vector_upsert_batch_size`` items (all batches in one
        transaction).
        """
        vb.check_name(collection)
        return await self._vector_upsert(collection, items)

    async def _vector_upsert(self, collection: str, items: Any) -> int:
        items = (
            list(items) if not isinstance(items, (str, bytes, dict)) and hasattr(items, "__iter__") else items
        )
        batch_size = self.settings.vector_upsert_batch_size

        async def run(backend: VectorBackend, info: CollectionInfo) -> int:
            batch = vb.prepare_items(items, info.dimensions)
            if info.distance == "cosine":
                for n, e in enumerate(batch.embeddings):
                    if not any(e):
                        raise InvalidInputError(
                            f"items[{n}].embedding is the zero vector (no cosine direction)"
                        )
            if not len(batch):
                return 0
            return await backend.upsert(info, batch, batch_size)

        return await self._vector_call(collection, run)

    @operation("vector_search")
    async def vector_search(
        self,
        collection: str,
        embedding: Any,
        *,
        k: int = 10,
        filter: dict[str, Any] | None = None,
        min_score: float | None = None,
        exact: bool = False,
        ef_search: int | None = None,
    ) -> list[VectorHit]:
        """The *k* items nearest to *embedding*, best first.

        filter: metadata fields by equality (``{"lang": "en"}``) or membership
        (``{"lang": {"in": ["en", "fr"]}}``); all must match. min_score: drop hits scoring
        below (score: cosine similarity for cosine, inner product for dot, minus the
        distance for l2). exact: scan every item instead of using the index (for recall
        checks). ef_search: HNSW candidate list size for this call (default: the
        ``vector_ef_search`` setting; higher is slower and more exact).

        Raises InvalidInputError, NotFoundError. One round trip.
        """
        vb.check_name(collection)
        k = vb.check_k(k)
        compiled = vb.compile_filter(filter)
        threshold = vb.check_min_score(min_score)
        ef = vb.check_ef_search(ef_search)
        if not isinstance(exact, bool):
            raise InvalidInputError(f"exact must be True or False (got {exact!r})")

        async def run(backend: VectorBackend, info: CollectionInfo) -> list[VectorHit]:
            query = self._vector_query(embedding, info)
            return await backend.search(info, query, k=k, filter=compiled, exact=exact, ef_search=ef)

        hits = await self._vector_call(collection, run)
        if threshold is not None:
            hits = [h for h in hits if h.score >= threshold]
        return hits

    @operation("vector_hybrid_search")
    async def vector_hybrid_search(
        self,
        collection: str,
        text: str,
        embedding: Any,
        *,
        k: int = 10,
        filter: dict[str, Any] | None = None,
        candidates: int | None = None,
        rrf_k: int = 60,
    ) -> list[VectorHit]:
        """Full-text and vector rankings fused by reciprocal rank fusion, best first.

        Each ranking contributes ``1 / (rrf_k + rank)`` per item; ``score`` is the sum.
        text: a web-search style query (``"quick fox" -dog``) in the collection's
        text_search_config. candidates: items taken from each ranking (default
        ``max(4 * k, 40)``). filter: as in :meth:`vector_search`, applied to both
        rankings. Raises InvalidInputError, NotFoundError. One round trip.
        """
        vb.check_name(collection)
        if not isinstance(text, str) or "\x00" in text:
            raise InvalidInputError(f"text must be a string without NUL (got {type(text).__name__})")
        k = vb.check_k(k)
        n = vb.check_k(candidates if candidates is not None else max(4 * k, 40), label="candidates")
        compiled = vb.compile_filter(filter)
        if isinstance(rrf_k, bool) or not isinstance(rrf_k, int) or not 0 <= rrf_k <= 10_000:
            raise InvalidInputError(f"rrf_k must be an integer from 0 to 10000 (got {rrf_k!r})")

        async def run(backend: VectorBackend, info: CollectionInfo) -> list[VectorHit]:
            query = self._vector_query(embedding, info)
            vector, textual, payload = await backend.hybrid_rankings(
                info, text, query, candidates=n, filter=compiled
            )
            fused = vb.rrf_fuse([vector, textual], k=k, rrf_k=rrf_k)
            return [VectorHit(id=i, score=s, content=payload[i][0], metadata=payload[i][1]) for i, s in fused]

        return await self._vector_call(collection, run)

    @operation("vector_get")
    async def vector_get(self, collection: str, id: str) -> VectorRecord | None:
        """The item *id* with its embedding, or None. Raises NotFoundError for an unknown
        collection. One round trip."""
        vb.check_name(collection)
        item_id = vb.check_id(id)
        return await self._vector_call(collection, lambda backend, info: backend.get(info, item_id))

    @operation("vector_delete")
    async def vector_delete(self, collection: str, ids: Any) -> int:
        """Delete items by id; returns how many existed. Raises NotFoundError for an unknown
        collection. One round trip."""
        vb.check_name(collection)
        checked = vb.check_ids(ids)
        if not checked:
            await self._vector_call(collection, lambda backend, info: backend.count(info))  # still 404s
            return 0
        return await self._vector_call(collection, lambda backend, info: backend.delete(info, checked))

    @operation("vector_count")
    async def vector_count(self, collection: str) -> int:
        """Items in the collection. Raises NotFoundError. One round trip (an exact count:
        it reads the collection's part of the primary key index)."""
        vb.check_name(collection)
        return await self._vector_call(collection, lambda backend, info: backend.count(info))

    # ------------------------------------------------------------------ for other features
    #
    # Reserved collections ("_" + name) hold embeddings of other features' rows (memory
    # snapshots: item id = snapshot id). They always live in pgvector, whatever
    # vector_backend says, so that a feature can write its row and its embedding in one
    # transaction: every helper that writes takes an optional ``con`` (a connection inside
    # the caller's ``_transaction()``) and then runs only on it.

    async def _vector_reserved_info(self, collection: str, con: Conn | None = None) -> CollectionInfo | None:
        """The reserved collection's catalog row (cached), or None when it was never created."""
        state = self._vector_state()
        info = state.reserved.get(collection)
        if info is not None:
            return info
        if con is None:
            info = await catalog.get(self, self.namespace, collection)
        else:
            row = await con.fetchrow(catalog.GET, self.namespace, collection)
            info = None if row is None else catalog.info_from_row(row)
        if info is not None and info.backend != "pgvector":  # pragma: no cover - written by us only
            raise NotFoundError(f"reserved collection {collection!r} is not a pgvector collection")
        if info is not None:
            state.reserved[collection] = info
        return info

    def _vector_reserved_mismatch(
        self, collection: str, info: CollectionInfo, length: int
    ) -> InvalidInputError:
        return InvalidInputError(
            f"embedding has {length} numbers, but the embeddings of {collection!r} in namespace "
            f"{self.namespace!r} have {info.dimensions} (fixed by the first one stored there); "
            f"embed with the same model, or use another namespace for another model"
        )

    async def _vector_reserved_check(self, collection: str, embedding: Any) -> list[float]:
        """Validate *embedding* for a reserved collection before the caller writes anything
        of its own: finite numbers, not all zero, at most the HNSW limit, and the
        collection's length once it exists. Writes nothing.
        Raises InvalidInputError, FeatureUnavailableError (no pgvector). One round trip
        (none once the collection is cached)."""
        vb.check_name(collection, allow_reserved=True)
        length = len(embedding) if hasattr(embedding, "__len__") else 0
        vec = vb.check_embedding(embedding, length)
        if not 1 <= length <= vb.MAX_HNSW_DIMENSIONS:
            raise InvalidInputError(
                f"embedding must have 1 to {vb.MAX_HNSW_DIMENSIONS} numbers (got {length})"
            )
        if not any(vec):
            raise InvalidInputError("embedding is the zero vector, which has no cosine distance to anything")
        state = self._vector_state()
        info = await self._vector_reserved_info(collection)
        if info is None:
            await state.reserved_backend.check_available()
        elif info.dimensions != length:
            raise self._vector_reserved_mismatch(collection, info, length)
        return vec

    async def _vector_reserved_ensure(self, collection: str, dimensions: int) -> CollectionInfo:
        """The reserved collection, created (cosine, HNSW) with *dimensions* on first use.

        Call it before the caller's transaction: creating takes its own transaction and
        DDL locks. Raises InvalidInputError when it exists with another length,
        FeatureUnavailableError (no pgvector)."""
        vb.check_name(collection, allow_reserved=True)
        info = await self._vector_reserved_info(collection)
        if info is None:
            spec = vb.check_collection_spec(
                collection, dimensions, "cosine", "hnsw", "simple", 16, 64, allow_reserved=True
            )
            state = self._vector_state()
            try:
                info = await state.reserved_backend.create_collection(spec, exist_ok=True)
            except ConflictError:  # created meanwhile with another length
                info = await catalog.get(self, self.namespace, collection)
                if info is None:
                    raise
            state.reserved[collection] = info
        if info.dimensions != dimensions:
            raise self._vector_reserved_mismatch(collection, info, dimensions)
        return info

    async def _vector_reserved_upsert(
        self, collection: str, item_id: str, embedding: Any, *, con: Conn | None = None, **fields: Any
    ) -> None:
        """Store one embedding (checked by :meth:`_vector_reserved_check`) in a reserved
        collection, creating the collection first when *con* is None. With *con*, the
        collection must exist (see :meth:`_vector_reserved_ensure`) and the write runs on
        *con*, in the caller's transaction. Raises ConflictError when the collection was
        dropped meanwhile (the caller's transaction should then roll back)."""
        vb.check_name(collection, allow_reserved=True)
        length = len(embedding) if hasattr(embedding, "__len__") else 0
        state = self._vector_state()
        backend = state.reserved_backend
        if con is None:
            info: CollectionInfo | None = await self._vector_reserved_ensure(collection, length)
        else:
            info = await self._vector_reserved_info(collection, con)
        if info is None:
            raise ConflictError(f"reserved vector collection {collection!r} does not exist (dropped?); retry")
        if info.dimensions != length:
            raise self._vector_reserved_mismatch(collection, info, length)
        batch = vb.prepare_items([{"id": item_id, "embedding": embedding, **fields}], info.dimensions)
        try:
            await backend.upsert_on(con, info, batch)
        except StaleCollectionError:
            state.reserved.pop(collection, None)
            raise ConflictError(
                f"reserved vector collection {collection!r} was dropped meanwhile; retry"
            ) from None

    async def _vector_reserved_search(
        self, collection: str, embedding: Any, *, k: int = 10, filter: dict[str, Any] | None = None
    ) -> list[VectorHit]:
        """Search a reserved collection; [] when nothing was ever stored in it. Raises
        InvalidInputError (bad embedding, or another length than the stored ones),
        FeatureUnavailableError (no pgvector). One round trip once the collection is cached."""
        vb.check_name(collection, allow_reserved=True)
        k = vb.check_k(k)
        compiled = vb.compile_filter(filter)
        length = len(embedding) if hasattr(embedding, "__len__") else 0
        vec = vb.check_embedding(embedding, length)
        if not length:
            raise InvalidInputError("embedding must have at least one number (got 0)")
        if not any(vec):
            raise InvalidInputError("embedding is the zero vector, which has no cosine distance to anything")
        state = self._vector_state()
        for _attempt in range(2):
            info = await self._vector_reserved_info(collection)
            if info is None:
                await state.reserved_backend.check_available()
                return []
            if info.dimensions != length:
                raise self._vector_reserved_mismatch(collection, info, length)
            try:
                return await state.reserved_backend.search(
                    info, vec, k=k, filter=compiled, exact=False, ef_search=None
                )
            except StaleCollectionError:
                state.reserved.pop(collection, None)
        return []

    async def _vector_reserved_delete(
        self, collection: str, ids: list[str], *, con: Conn | None = None
    ) -> int:
        """Delete items of a reserved collection (on *con* when given); 0 when it does not
        exist. One round trip, two when the collection is not cached yet."""
        vb.check_name(collection, allow_reserved=True)
        checked = vb.check_ids(ids)
        if not checked:
            return 0
        info = await self._vector_reserved_info(collection, con)
        if info is None:
            return 0
        try:
            return await self._vector_state().reserved_backend.delete(info, checked, con=con)
        except StaleCollectionError:
            self._vector_state().reserved.pop(collection, None)
            return 0

    async def _vector_reserved_copy(
        self, collection: str, source_id: str, target_id: str, *, con: Conn | None = None
    ) -> bool:
        """Copy one item of a reserved collection to a new id (on *con* when given); False
        when the source has no item or the collection does not exist. One round trip."""
        vb.check_name(collection, allow_reserved=True)
        source, target = vb.check_id(source_id), vb.check_id(target_id)
        info = await self._vector_reserved_info(collection, con)
        if info is None:
            return False
        return await self._vector_state().reserved_backend.copy(info, source, target, con=con)
