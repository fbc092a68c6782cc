"""What every vector backend shares: the models, argument checks, filters and fusion.

Pure logic, no I/O: the mixin validates every argument here before it reaches a
backend, so a bad call writes nothing whichever backend is configured.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidInputError

Distance = Literal["cosine", "l2", "dot"]
IndexKind = Literal["hnsw", "none"]

DISTANCES: tuple[str, ...] = ("cosine", "l2", "dot")
INDEX_KINDS: tuple[str, ...] = ("hnsw", "none")
MAX_DIMENSIONS = 16000  # pgvector's limit for the vector type
MAX_HNSW_DIMENSIONS = 2000  # pgvector's limit for an HNSW index on vector
MAX_ID_LENGTH = 512
MAX_K = 1000
_FLOAT32_MAX = 3.4028234663852886e38
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_RESERVED_RE = re.compile(r"^_[a-z0-9][a-z0-9_.-]{0,61}$")
_TS_CONFIG_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


# ---------------------------------------------------------------------- public models


class VectorItem(BaseModel):
    """One item to upsert: a plain dict with the same keys is accepted too."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    embedding: Any
    content: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class VectorHit(BaseModel):
    """One search result. ``score``: higher is better (see docs/vectors.md for each distance)."""

    id: str
    score: float
    content: str
    metadata: dict[str, Any]


class VectorRecord(BaseModel):
    """A stored item, as ``vector_get`` returns it."""

    id: str
    embedding: list[float]
    content: str
    metadata: dict[str, Any]


class VectorCollection(BaseModel):
    """A collection of this namespace."""

    name: str
    dimensions: int
    distance: Distance
    index: IndexKind
    backend: str
    text_search_config: str
    created_at: datetime


@dataclass(frozen=True)
class CollectionInfo:
    """A catalog row. Immutable for its ``id``: a cached copy is never wrong, only gone."""

    id: int
    namespace: str
    name: str
    dimensions: int
    distance: str
    index: str
    backend: str
    text_search_config: str
    external_name: str | None
    options: Mapping[str, Any]
    created_at: datetime

    def public(self) -> VectorCollection:
        return VectorCollection(
            name=self.name,
            dimensions=self.dimensions,
            distance=self.distance,  # type: ignore[arg-type]
            index=self.index,  # type: ignore[arg-type]
            backend=self.backend,
            text_search_config=self.text_search_config,
            created_at=self.created_at,
        )


@dataclass(frozen=True)
class CollectionSpec:
    """A validated ``vector_collection_create`` request."""

    name: str
    dimensions: int
    distance: str
    index: str
    text_search_config: str
    m: int
    ef_construction: int
    build_index: bool = True


@dataclass(frozen=True)
class PreparedBatch:
    """Validated items, in the column layout the backends send."""

    ids: list[str]
    embeddings: list[list[float]]
    contents: list[str]
    metadata: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.ids)

    def flat_embeddings(self) -> list[float]:
        flat: list[float] = []
        for e in self.embeddings:
            flat.extend(e)
        return flat

    def slice(self, start: int, stop: int) -> PreparedBatch:
        return PreparedBatch(
            self.ids[start:stop],
            self.embeddings[start:stop],
            self.contents[start:stop],
            self.metadata[start:stop],
        )


class StaleCollectionError(Exception):
    """Internal: a cached collection was dropped meanwhile; the mixin looks it up again."""


# ---------------------------------------------------------------------- validation


def check_name(name: object, *, allow_reserved: bool = False) -> str:
    """A collection name: 1-63 of a-z 0-9 _ . -, starting with a letter or digit."""
    if isinstance(name, str) and (_NAME_RE.match(name) or (allow_reserved and _RESERVED_RE.match(name))):
        return name
    raise InvalidInputError(
        f"collection must be 1 to 63 characters of a-z, 0-9, '_', '.', '-' starting with a "
        f"letter or digit (got {name!r})"
    )


def check_collection_spec(
    name: object,
    dimensions: object,
    distance: object,
    index: object,
    text_search_config: object,
    m: object,
    ef_construction: object,
    *,
    build_index: object = True,
    allow_reserved: bool = False,
) -> CollectionSpec:
    """Validate the arguments of ``vector_collection_create``."""
    check_name(name, allow_reserved=allow_reserved)
    if (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 1 <= dimensions <= MAX_DIMENSIONS
    ):
        raise InvalidInputError(
            f"dimensions must be an integer from 1 to {MAX_DIMENSIONS} (got {dimensions!r})"
        )
    if distance not in DISTANCES:
        raise InvalidInputError(f"distance must be one of {', '.join(DISTANCES)} (got {distance!r})")
    if index not in INDEX_KINDS:
        raise InvalidInputError(f"index must be one of {', '.join(INDEX_KINDS)} (got {index!r})")
    if index == "hnsw" and dimensions > MAX_HNSW_DIMENSIONS:
        raise InvalidInputError(
            f"an hnsw index supports at most {MAX_HNSW_DIMENSIONS} dimensions (got {dimensions}); "
            "use index='none' (exact search) or reduce the dimensions"
        )
    if not isinstance(text_search_config, str) or not _TS_CONFIG_RE.match(text_search_config):
        raise InvalidInputError(
            f"text_search_config must name a PostgreSQL text search configuration such as "
            f"'english' or 'simple' (got {text_search_config!r})"
        )
    for label, value, low, high in (("m", m, 2, 100), ("ef_construction", ef_construction, 4, 1000)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidInputError(f"{label} must be an integer from {low} to {high} (got {value!r})")
    if not isinstance(build_index, bool):
        raise InvalidInputError(f"build_index must be True or False (got {build_index!r})")
    if ef_construction < 2 * m:  # type: ignore[operator]
        raise InvalidInputError(f"ef_construction ({ef_construction}) must be at least 2 * m ({2 * m})")  # type: ignore[operator]
    return CollectionSpec(
        name=name,  # type: ignore[arg-type]
        dimensions=dimensions,
        distance=distance,  # type: ignore[arg-type]
        index=index,  # type: ignore[arg-type]
        text_search_config=text_search_config,
        m=m,  # type: ignore[arg-type]
        ef_construction=ef_construction,  # type: ignore[arg-type]
        build_index=build_index,
    )


def check_embedding(value: object, dimensions: int, *, label: str = "embedding") -> list[Any]:
    """*value* (a sequence of numbers or a 1-D numpy array) checked and as a list of numbers.

    Raises InvalidInputError for a wrong length, NaN, infinity, a value beyond float32
    (pgvector stores float32) or anything that is not a number.
    """
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and getattr(value, "ndim", None) is not None:  # numpy, without importing it
        if value.ndim != 1:  # type: ignore[attr-defined]
            raise InvalidInputError(f"{label} must be one-dimensional (got shape {value.shape})")  # type: ignore[attr-defined]
        value = tolist()  # Python floats, in C
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidInputError(
            f"{label} must be a list of floats or a numpy array (got {type(value).__name__})"
        )
    if len(value) != dimensions:
        raise InvalidInputError(f"{label} has {len(value)} dimensions; the collection has {dimensions}")
    try:
        # Three passes in C: fsum refuses what is not a number, and a NaN or an infinity
        # anywhere makes it non-finite (so does an overflowing sum of finite values: the
        # slow pass below then finds nothing wrong). max/min catch float32 overflow.
        total = math.fsum(value)
        ok = math.isfinite(total) and max(value) <= _FLOAT32_MAX and min(value) >= -_FLOAT32_MAX
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        for i, x in enumerate(value):
            if isinstance(x, (str, bytes)) or not _is_number(x):
                raise InvalidInputError(f"{label}[{i}] is not a number (got {x!r})")
            f = float(x)
            if math.isnan(f):
                raise InvalidInputError(f"{label}[{i}] is NaN; embeddings must be finite")
            if math.isinf(f) or abs(f) > _FLOAT32_MAX:
                raise InvalidInputError(
                    f"{label}[{i}] is infinite (or beyond float32); embeddings must be finite"
                )
    # asyncpg encodes ints, floats and numpy scalars alike as float4: no copy needed.
    return value if isinstance(value, list) else list(value)


def _is_number(x: object) -> bool:
    try:
        float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def check_metadata(value: object, *, label: str = "metadata") -> dict[str, Any]:
    """A JSON object with string keys, round-tripped through JSON to prove it encodes."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{label} must be a JSON object (a dict), got {type(value).__name__}")
    try:
        encoded = orjson.dumps(value)  # no OPT_NON_STR_KEYS: JSON keys are strings
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidInputError(f"{label} is not JSON: {exc}") from None
    return orjson.loads(encoded)


def check_id(value: object, *, label: str = "id") -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH or "\x00" in value:
        raise InvalidInputError(
            f"{label} must be a non-empty string of at most {MAX_ID_LENGTH} characters without NUL "
            f"(got {value!r})"
        )
    return value


def check_ids(values: object) -> list[str]:
    """A list of item ids (a single string is refused: it would be read as characters)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidInputError(f"ids must be a list of strings (got {type(values).__name__})")
    return [check_id(v, label=f"ids[{i}]") for i, v in enumerate(values)]


def prepare_items(items: object, dimensions: int) -> PreparedBatch:
    """Validate every item (before anything is written) into column lists.

    Each item is a :class:`VectorItem` or a mapping with ``id``, ``embedding`` and
    optionally ``content`` (text) and ``metadata`` (a JSON object). Ids must be unique
    within one call.
    """
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise InvalidInputError(f"items must be a list of items (got {type(items).__name__})")
    ids: list[str] = []
    embeddings: list[list[float]] = []
    contents: list[str] = []
    metadata: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, item in enumerate(items):
        if isinstance(item, VectorItem):
            raw: Mapping[str, Any] = {
                "id": item.id,
                "embedding": item.embedding,
                "content": item.content,
                "metadata": item.metadata,
            }
        elif isinstance(item, Mapping):
            unknown = set(item) - {"id", "embedding", "content", "metadata"}
            if unknown:
                raise InvalidInputError(
                    f"items[{n}] has unknown keys {sorted(unknown)}; use id, embedding, content, metadata"
                )
            raw = item
        else:
            raise InvalidInputError(f"items[{n}] must be a VectorItem or a dict (got {type(item).__name__})")
        if "embedding" not in raw:
            raise InvalidInputError(f"items[{n}] has no embedding")
        item_id = check_id(raw.get("id"), label=f"items[{n}].id")
        if item_id in seen:
            raise InvalidInputError(f"items[{n}].id {item_id!r} appears twice in one call")
        seen.add(item_id)
        content = raw.get("content", "")
        if content is None:
            content = ""
        if not isinstance(content, str) or "\x00" in content:
            raise InvalidInputError(
                f"items[{n}].content must be text without NUL (got {type(content).__name__})"
            )
        ids.append(item_id)
        embeddings.append(check_embedding(raw["embedding"], dimensions, label=f"items[{n}].embedding"))
        contents.append(content)
        metadata.append(check_metadata(raw.get("metadata"), label=f"items[{n}].metadata"))
    return PreparedBatch(ids, embeddings, contents, metadata)


def check_k(k: object, *, label: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInputError(f"{label} must be an integer from 1 to {MAX_K} (got {k!r})")
    return k


def check_min_score(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"min_score must be a finite number or None (got {value!r})")
    return float(value)


def check_ef_search(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise InvalidInputError(f"ef_search must be an integer from 1 to 1000 or None (got {value!r})")
    return value


def compile_filter(flt: object) -> dict[str, list[Any]] | None:
    """A metadata filter as ``{field: [allowed values]}`` (every field must match).

    Accepted: ``{"field": value}`` (equal) and ``{"field": {"in": [v1, v2]}}`` (any of).
    Values compare as JSON (``1`` equals ``1.0``; ``"1"`` does not). A missing field
    matches nothing.
    """
    if flt is None:
        return None
    if not isinstance(flt, Mapping):
        raise InvalidInputError(f"filter must be a dict like {{'field': value}} (got {type(flt).__name__})")
    out: dict[str, list[Any]] = {}
    for key, cond in flt.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"filter keys must be non-empty strings (got {key!r})")
        if isinstance(cond, Mapping):
            if set(cond) != {"in"}:
                raise InvalidInputError(
                    f"filter[{key!r}] must be a value (equality) or {{'in': [values]}}; got keys "
                    f"{sorted(map(str, cond))} (to match an object value use {{'in': [object]}})"
                )
            allowed = cond["in"]
            if isinstance(allowed, (str, bytes, Mapping)) or not isinstance(allowed, Sequence):
                raise InvalidInputError(f"filter[{key!r}]['in'] must be a list of values")
            values = list(allowed)
        else:
            values = [cond]
        try:
            out[key] = orjson.loads(orjson.dumps(values))
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise InvalidInputError(f"filter[{key!r}] is not JSON: {exc}") from None
    return out or None


def matches_filter(metadata: Mapping[str, Any], compiled: Mapping[str, list[Any]] | None) -> bool:
    """The filter's meaning in Python (the SQL does the same; the contract tests compare them)."""
    if not compiled:
        return True
    for key, allowed in compiled.items():
        if key not in metadata:
            return False
        value = metadata[key]
        if not any(_json_equal(value, a) for a in allowed):
            return False
    return True


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


# ---------------------------------------------------------------------- scores and fusion


def score_from_distance(distance: str, value: float) -> float:
    """Turn a backend distance into a score where higher is better.

    cosine: 1 - cosine distance (the cosine similarity, -1..1); dot: the inner product;
    l2: minus the Euclidean distance.
    """
    if distance == "cosine":
        return 1.0 - value
    return -value  # pgvector's <#> is the negative inner product; <-> the L2 distance


def rrf_fuse(rankings: Sequence[Sequence[str]], *, k: int, rrf_k: int = 60) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: each id scores sum(1 / (rrf_k + rank)) over the rankings.

    Ranks start at 1. Ties keep the order of first appearance (best ranks first), so
    the result is deterministic. Returns the best *k* as (id, fused score).
    """
    scores: dict[str, float] = {}
    first_seen: dict[str, tuple[int, int]] = {}
    for r, ranking in enumerate(rankings):
        for rank, item_id in enumerate(ranking, start=1):
            scores[item_id] = scores.get(item_id, 0.0) + 1.0 / (rrf_k + rank)
            first_seen.setdefault(item_id, (rank, r))
    ordered = sorted(scores, key=lambda i: (-scores[i], first_seen[i]))
    return [(i, scores[i]) for i in ordered[:k]]


# ---------------------------------------------------------------------- backend interface


class VectorBackend(ABC):
    """Where items live. The mixin validates; a backend only stores and searches.

    Every method taking a :class:`CollectionInfo` raises :class:`StaleCollectionError`
    when that collection no longer exists, so the mixin can refresh its cache.
    """

    name: ClassVar[str]

    @abstractmethod
    async def check_available(self) -> None:
        """Raise FeatureUnavailableError (saying how to fix it) when this backend cannot work."""

    @abstractmethod
    async def create_collection(self, spec: CollectionSpec, *, exist_ok: bool) -> CollectionInfo: ...

    @abstractmethod
    async def drop_collection(self, info: CollectionInfo) -> None: ...

    @abstractmethod
    async def build_index(self, info: CollectionInfo, *, timeout: float) -> bool:
        """Build the collection's index if it is missing; True when one was built."""

    @abstractmethod
    async def upsert(self, info: CollectionInfo, batch: PreparedBatch, batch_size: int) -> int: ...

    @abstractmethod
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
        """The best *k* hits, best first, with scores from :func:`score_from_distance`."""

    @abstractmethod
    async def hybrid_rankings(
        self,
        info: CollectionInfo,
        text: str,
        embedding: list[float],
        *,
        candidates: int,
        filter: dict[str, list[Any]] | None = None,
    ) -> tuple[list[str], list[str], dict[str, tuple[str, dict[str, Any]]]]:
        """The vector ranking, the full-text ranking (ids, best first) and each id's
        (content, metadata)."""

    @abstractmethod
    async def get(self, info: CollectionInfo, item_id: str) -> VectorRecord | None: ...

    @abstractmethod
    async def delete(self, info: CollectionInfo, ids: list[str]) -> int: ...

    @abstractmethod
    async def count(self, info: CollectionInfo) -> int: ...

    async def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release what the backend holds (a client); the pgvector backend holds nothing."""
