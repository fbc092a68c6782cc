"""The Weaviate backend (extra ``unified-db[weaviate]``, weaviate-client v4).

The catalog stays in PostgreSQL (names, dimensions, namespaces); the items live in one
Weaviate collection per unified_db collection, named ``Udb_<random hex>`` at creation
and recorded in the catalog, so namespaces, schemas and databases sharing a Weaviate
server never meet. Item ids become UUIDv5 of the id (Weaviate wants UUIDs); the id itself
is kept in the ``item_id`` property. Metadata is stored whole as JSON (``metadata_json``)
and, for filtering, each top-level scalar field also as a property ``meta_<field>``.

Request building and result mapping are plain functions (unit-tested without a server).
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import FeatureUnavailableError, InvalidInputError, UnifiedDBError
from . import catalog
from .base import (
    CollectionInfo,
    CollectionSpec,
    PreparedBatch,
    StaleCollectionError,
    VectorBackend,
    VectorHit,
    VectorRecord,
)

if TYPE_CHECKING:
    from ..extensions._protocol import DBProtocol

ID_NAMESPACE = uuid.UUID("5a1c7e0e-4d0b-4c8e-9a53-7f3e8a2b9c11")  # fixed: ids map the same forever
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")
DISTANCE_METRICS = {"cosine": "cosine", "dot": "dot", "l2": "l2-squared"}


def _client_modules() -> Any:
    try:
        import weaviate
        import weaviate.classes as wvc
    except ImportError as exc:
        raise FeatureUnavailableError(
            "the Weaviate backend needs weaviate-client v4: pip install 'unified-db[weaviate]'"
        ) from exc
    return weaviate, wvc


def new_external_name() -> str:
    return "Udb_" + uuid.uuid4().hex


def object_uuid(item_id: str) -> uuid.UUID:
    return uuid.uuid5(ID_NAMESPACE, item_id)


def properties_for(item_id: str, content: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """The Weaviate properties of one item."""
    props: dict[str, Any] = {
        "item_id": item_id,
        "content": content,
        "metadata_json": orjson.dumps(metadata).decode(),
    }
    for key, value in metadata.items():
        if _FIELD_RE.match(key) and (value is None or isinstance(value, (str, int, float, bool))):
            if value is not None:
                props["meta_" + key] = value
    return props


def filter_spec(compiled: dict[str, list[Any]] | None) -> list[tuple[str, str, Any]]:
    """The filter as (property, operator, operand) triples, ANDed; operator 'equal' or 'any'."""
    if not compiled:
        return []
    out = []
    for key, allowed in compiled.items():
        if not _FIELD_RE.match(key):
            raise InvalidInputError(
                f"filter field {key!r} cannot be filtered on with the Weaviate backend "
                "(fields must match [A-Za-z_][A-Za-z0-9_]*)"
            )
        if any(v is None or not isinstance(v, (str, int, float, bool)) for v in allowed):
            raise InvalidInputError(
                f"filter[{key!r}]: the Weaviate backend filters on strings, numbers and booleans only"
            )
        prop = "meta_" + key
        out.append((prop, "equal", allowed[0]) if len(allowed) == 1 else (prop, "any", list(allowed)))
    return out


def build_filter(compiled: dict[str, list[Any]] | None) -> Any:
    """A weaviate ``Filter`` for *compiled*, or None."""
    spec = filter_spec(compiled)
    if not spec:
        return None
    _, wvc = _client_modules()
    parts = [
        wvc.query.Filter.by_property(p).equal(v)
        if op == "equal"
        else wvc.query.Filter.by_property(p).contains_any(v)
        for p, op, v in spec
    ]
    return wvc.query.Filter.all_of(parts) if len(parts) > 1 else parts[0]


def score_from_weaviate(distance_kind: str, distance: float | None) -> float:
    """Weaviate's distance as the score pgvector would give (higher is better)."""
    d = float(distance or 0.0)
    if distance_kind == "cosine":
        return 1.0 - d
    if distance_kind == "l2":
        return -(max(d, 0.0) ** 0.5)  # Weaviate reports the squared L2 distance
    return -d  # dot: Weaviate's distance is the negative inner product


def hit_from_object(obj: Any, distance_kind: str) -> VectorHit:
    """Map one weaviate result object to a VectorHit."""
    props = obj.properties
    return VectorHit(
        id=props["item_id"],
        score=score_from_weaviate(distance_kind, getattr(obj.metadata, "distance", None)),
        content=props.get("content") or "",
        metadata=orjson.loads(props.get("metadata_json") or "{}"),
    )


def record_from_object(obj: Any) -> VectorRecord:
    props = obj.properties
    vector = obj.vector
    if isinstance(vector, dict):
        vector = vector.get("default") or next(iter(vector.values()), [])
    return VectorRecord(
        id=props["item_id"],
        embedding=[float(x) for x in vector],
        content=props.get("content") or "",
        metadata=orjson.loads(props.get("metadata_json") or "{}"),
    )


def collection_config(spec: CollectionSpec) -> dict[str, Any]:
    """Keyword arguments of ``client.collections.create`` for *spec* (less the name)."""
    _, wvc = _client_modules()
    cfg = wvc.config
    metric = cfg.VectorDistances(DISTANCE_METRICS[spec.distance])
    index = (
        cfg.Configure.VectorIndex.hnsw(
            distance_metric=metric, max_connections=spec.m, ef_construction=spec.ef_construction
        )
        if spec.index == "hnsw"
        else cfg.Configure.VectorIndex.flat(distance_metric=metric)
    )
    return {
        "vector_config": cfg.Configure.Vectors.self_provided(vector_index_config=index),
        "properties": [
            cfg.Property(name="item_id", data_type=cfg.DataType.TEXT, tokenization=cfg.Tokenization.FIELD),
            cfg.Property(name="content", data_type=cfg.DataType.TEXT),
            cfg.Property(
                name="metadata_json",
                data_type=cfg.DataType.TEXT,
                index_filterable=False,
                index_searchable=False,
            ),
        ],
    }


class WeaviateBackend(VectorBackend):
    """Items in a Weaviate server named by ``weaviate_url``; the catalog in PostgreSQL."""

    name = "weaviate"

    def __init__(self, db: DBProtocol) -> None:
        self.db = db
        self._client: Any = None

    async def check_available(self) -> None:
        _client_modules()
        if not self.db.settings.weaviate_url:
            raise FeatureUnavailableError(
                "vector_backend='weaviate' needs weaviate_url (UNIFIED_DB_WEAVIATE_URL), "
                "e.g. http://localhost:8080"
            )

    async def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        await self.check_available()
        weaviate, _ = _client_modules()
        from urllib.parse import urlsplit

        url = urlsplit(self.db.settings.weaviate_url or "")
        secure = url.scheme == "https"
        client = weaviate.use_async_with_custom(
            http_host=url.hostname or "localhost",
            http_port=url.port or (443 if secure else 8080),
            http_secure=secure,
            grpc_host=url.hostname or "localhost",
            grpc_port=50051,
            grpc_secure=secure,
            auth_credentials=(
                weaviate.auth.AuthApiKey(self.db.settings.weaviate_api_key)
                if self.db.settings.weaviate_api_key
                else None
            ),
        )
        try:
            await client.connect()
        except Exception as exc:  # the client raises its own many classes
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - the connect error is the one to report
                pass
            raise FeatureUnavailableError(f"cannot reach Weaviate at {url.geturl()}: {exc}") from exc
        self._client = client
        return client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _collection(self, info: CollectionInfo) -> Any:
        client = await self._connect()
        return client.collections.use(info.external_name)

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except UnifiedDBError:
            raise
        except Exception as exc:
            text = str(exc)
            if "could not find class" in text.lower() or "not found" in text.lower():
                raise StaleCollectionError from exc
            raise UnifiedDBError(f"weaviate: {exc.__class__.__name__}: {exc}") from exc

    async def create_collection(self, spec: CollectionSpec, *, exist_ok: bool) -> CollectionInfo:
        client = await self._connect()
        config = collection_config(spec)
        async with self.db._transaction() as con:
            info, created = await catalog.insert(
                con, self.db.namespace, spec, self.name, new_external_name(), exist_ok=exist_ok
            )
            if created:  # inside the transaction: a Weaviate failure leaves no catalog row
                await self._call(client.collections.create(info.external_name, **config))
        return info

    async def drop_collection(self, info: CollectionInfo) -> None:
        status = await self.db._execute(catalog.DELETE, self.db.namespace, info.id)
        if status.endswith(" 0"):
            raise StaleCollectionError
        client = await self._connect()
        await self._call(client.collections.delete(info.external_name))

    async def build_index(self, info: CollectionInfo, *, timeout: float) -> bool:
        return False  # Weaviate indexes every object as it is inserted

    async def upsert(self, info: CollectionInfo, batch: PreparedBatch, batch_size: int) -> int:
        _, wvc = _client_modules()
        col = await self._collection(info)
        total = 0
        for start in range(0, len(batch), batch_size):
            part = batch.slice(start, start + batch_size)
            objects = [
                wvc.data.DataObject(properties=properties_for(i, c, m), uuid=object_uuid(i), vector=e)
                for i, e, c, m in zip(part.ids, part.embeddings, part.contents, part.metadata, strict=True)
            ]
            result = await self._call(col.data.insert_many(objects))
            if result.has_errors:
                raise UnifiedDBError(f"weaviate rejected items: {list(result.errors.values())[:3]}")
            total += len(objects)
        return total

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
        _, wvc = _client_modules()
        col = await self._collection(info)
        res = await self._call(
            col.query.near_vector(
                near_vector=embedding,
                limit=k,
                filters=build_filter(filter),
                return_metadata=wvc.query.MetadataQuery(distance=True),
            )
        )
        return [hit_from_object(o, info.distance) for o in res.objects]

    async def hybrid_rankings(
        self,
        info: CollectionInfo,
        text: str,
        embedding: list[float],
        *,
        candidates: int,
        filter: dict[str, list[Any]] | None = None,
    ) -> tuple[list[str], list[str], dict[str, tuple[str, dict[str, Any]]]]:
        col = await self._collection(info)
        where = build_filter(filter)
        vec = await self._call(col.query.near_vector(near_vector=embedding, limit=candidates, filters=where))
        bm25 = await self._call(
            col.query.bm25(query=text, limit=candidates, query_properties=["content"], filters=where)
        )
        payload: dict[str, tuple[str, dict[str, Any]]] = {}
        rankings: list[list[str]] = []
        for res in (vec, bm25):
            ids = []
            for o in res.objects:
                rec = hit_from_object(o, info.distance)
                payload[rec.id] = (rec.content, rec.metadata)
                ids.append(rec.id)
            rankings.append(ids)
        return rankings[0], rankings[1], payload

    async def get(self, info: CollectionInfo, item_id: str) -> VectorRecord | None:
        col = await self._collection(info)
        obj = await self._call(col.query.fetch_object_by_id(object_uuid(item_id), include_vector=True))
        return None if obj is None else record_from_object(obj)

    async def delete(self, info: CollectionInfo, ids: list[str]) -> int:
        if not ids:
            return 0
        _, wvc = _client_modules()
        col = await self._collection(info)
        res = await self._call(
            col.data.delete_many(where=wvc.query.Filter.by_id().contains_any([object_uuid(i) for i in ids]))
        )
        return int(res.successful)

    async def count(self, info: CollectionInfo) -> int:
        col = await self._collection(info)
        res = await self._call(col.aggregate.over_all(total_count=True))
        return int(res.total_count or 0)
