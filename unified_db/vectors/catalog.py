"""The collection catalog (``__schema__.vector_collections``), shared by every backend.

A catalog row never changes after it is written: dimensions, distance and index are
fixed for a collection's id, and ids are never reused. So a cached row is either
right or points at a dropped collection, which every backend query detects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConflictError
from .base import CollectionInfo, CollectionSpec

if TYPE_CHECKING:
    from ..core import Conn
    from ..extensions._protocol import DBProtocol

GET = """
SELECT id, namespace, name, dimensions, distance, index_kind, backend, text_search_config,
       external_name, options, created_at
  FROM __schema__.vector_collections WHERE namespace = $1 AND name = $2
"""
LIST = """
SELECT id, namespace, name, dimensions, distance, index_kind, backend, text_search_config,
       external_name, options, created_at
  FROM __schema__.vector_collections WHERE namespace = $1 ORDER BY name
"""
INSERT = """
INSERT INTO __schema__.vector_collections
    (namespace, name, dimensions, distance, index_kind, backend, text_search_config, external_name, options)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (namespace, name) DO NOTHING
RETURNING id, namespace, name, dimensions, distance, index_kind, backend, text_search_config,
       external_name, options, created_at
"""
EXISTS = "SELECT 1 FROM __schema__.vector_collections WHERE namespace = $1 AND id = $2"
DELETE = "DELETE FROM __schema__.vector_collections WHERE namespace = $1 AND id = $2"


def info_from_row(row: Any) -> CollectionInfo:
    return CollectionInfo(
        id=row["id"],
        namespace=row["namespace"],
        name=row["name"],
        dimensions=row["dimensions"],
        distance=row["distance"],
        index=row["index_kind"],
        backend=row["backend"],
        text_search_config=row["text_search_config"],
        external_name=row["external_name"],
        options=row["options"] or {},
        created_at=row["created_at"],
    )


def same_definition(info: CollectionInfo, spec: CollectionSpec, backend: str) -> bool:
    return (
        info.dimensions == spec.dimensions
        and info.distance == spec.distance
        and info.index == spec.index
        and info.backend == backend
        and info.text_search_config == spec.text_search_config
    )


async def insert(
    con: Conn,
    namespace: str,
    spec: CollectionSpec,
    backend: str,
    external_name: str | None,
    *,
    exist_ok: bool,
) -> tuple[CollectionInfo, bool]:
    """Insert the catalog row; returns (info, created). An existing one is returned when
    *exist_ok* and its definition is the same, else ConflictError."""
    row = await con.fetchrow(
        INSERT,
        namespace,
        spec.name,
        spec.dimensions,
        spec.distance,
        spec.index,
        backend,
        spec.text_search_config,
        external_name,
        {"m": spec.m, "ef_construction": spec.ef_construction} if spec.index == "hnsw" else {},
    )
    if row is not None:
        return info_from_row(row), True
    existing = await con.fetchrow(GET, namespace, spec.name)
    if existing is None:  # dropped between the two statements: let the caller retry
        raise ConflictError(f"collection {spec.name!r} was dropped while being created; retry")
    info = info_from_row(existing)
    if exist_ok and same_definition(info, spec, backend):
        return info, False
    raise ConflictError(
        f"collection {spec.name!r} already exists ({info.dimensions} dimensions, {info.distance}, "
        f"{info.index}, {info.backend}); drop it first, or pass exist_ok=True with the same definition"
    )


async def get(db: DBProtocol, namespace: str, name: str) -> CollectionInfo | None:
    row = await db._fetchrow(GET, namespace, name)
    return None if row is None else info_from_row(row)


async def list_all(db: DBProtocol, namespace: str) -> list[CollectionInfo]:
    return [info_from_row(r) for r in await db._fetch(LIST, namespace)]
