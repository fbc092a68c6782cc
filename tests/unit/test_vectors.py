"""Vectors: validation, filters, fusion, SQL rendering and the embedder, without a database."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from unified_db import InvalidInputError
from unified_db.embeddings import Embedder, HashingEmbedder, cosine_similarity
from unified_db.vectors import base as vb
from unified_db.vectors.base import CollectionInfo, VectorItem
from unified_db.vectors.pgvector import create_index_sql, hybrid_sql, search_sql


def info(**kw) -> CollectionInfo:
    values = dict(
        id=7,
        namespace="default",
        name="docs",
        dimensions=3,
        distance="cosine",
        index="hnsw",
        backend="pgvector",
        text_search_config="english",
        external_name=None,
        options={},
        created_at=datetime.now(UTC),
    )
    values.update(kw)
    return CollectionInfo(**values)


# ---------------------------------------------------------------- embeddings


@pytest.mark.parametrize(
    "value, message",
    [
        ([1.0, 2.0], "has 2 dimensions; the collection has 3"),
        ([1.0, math.nan, 2.0], r"embedding\[1\] is NaN"),
        ([1.0, 2.0, math.inf], r"embedding\[2\] is infinite"),
        ([1.0, -math.inf, 2.0], r"embedding\[1\] is infinite"),
        ([1.0, 1e39, 2.0], r"embedding\[1\] is infinite \(or beyond float32\)"),
        ([1.0, "2", 3.0], r"embedding\[1\] is not a number"),
        ([1.0, None, 3.0], r"embedding\[1\] is not a number"),
        ("abc", "must be a list of floats"),
        ({"a": 1}, "must be a list of floats"),
        (np.zeros((3, 1)), "one-dimensional"),
        (np.array([1.0, np.nan, 0.0]), "is NaN"),
    ],
)
def test_bad_embeddings_are_refused_with_the_reason(value, message):
    with pytest.raises(InvalidInputError, match=message):
        vb.check_embedding(value, 3)


def test_good_embeddings_become_lists_of_floats():
    assert vb.check_embedding([1, 2.5, -3], 3) == [1.0, 2.5, -3.0]
    out = vb.check_embedding(np.array([0.5, 1.5, 2.5], dtype=np.float32), 3)
    assert out == [0.5, 1.5, 2.5] and all(type(x) is float for x in out)
    assert vb.check_embedding((np.float64(1), np.float32(2), 3), 3) == [1.0, 2.0, 3.0]
    # Finite values whose sum overflows are still finite embeddings.
    assert vb.check_embedding([3e38, 3e38, 3e38], 3) == [3e38, 3e38, 3e38]


# ---------------------------------------------------------------- items, metadata, ids


def test_prepare_items_accepts_models_and_dicts_and_fills_defaults():
    batch = vb.prepare_items(
        [
            VectorItem(id="a", embedding=[1, 0, 0], content="x", metadata={"k": 1}),
            {"id": "b", "embedding": [0, 1, 0]},
        ],
        3,
    )
    assert batch.ids == ["a", "b"]
    assert batch.contents == ["x", ""]
    assert batch.metadata == [{"k": 1}, {}]
    assert batch.flat_embeddings() == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert batch.slice(1, 2).ids == ["b"]


@pytest.mark.parametrize(
    "items, message",
    [
        ([{"id": "", "embedding": [1, 2, 3]}], r"items\[0\]\.id must be a non-empty string"),
        ([{"id": 5, "embedding": [1, 2, 3]}], r"items\[0\]\.id must be a non-empty string"),
        ([{"id": "a", "embedding": [1, 2, 3]}, {"id": "a", "embedding": [1, 2, 3]}], "appears twice"),
        ([{"id": "a"}], "has no embedding"),
        ([{"id": "a", "embedding": [1, 2, 3], "vector": 1}], "unknown keys"),
        ([{"id": "a", "embedding": [1, 2, 3], "metadata": [1, 2]}], "must be a JSON object"),
        ([{"id": "a", "embedding": [1, 2, 3], "metadata": {"x": object()}}], "is not JSON"),
        ([{"id": "a", "embedding": [1, 2, 3], "metadata": {1: "x"}}], "is not JSON"),
        ([{"id": "a", "embedding": [1, 2, 3], "content": 5}], "content must be text"),
        ([{"id": "a", "embedding": [1, 2, 3], "content": "a\x00b"}], "content must be text"),
        (
            [{"id": "ok", "embedding": [1, 2, 3]}, {"id": "bad", "embedding": [1, 2]}],
            r"items\[1\]\.embedding",
        ),
        ("abc", "items must be a list"),
        ({"id": "a", "embedding": [1, 2, 3]}, "items must be a list"),
        ([42], r"items\[0\] must be a VectorItem or a dict"),
    ],
)
def test_prepare_items_refuses_bad_items(items, message):
    with pytest.raises(InvalidInputError, match=message):
        vb.prepare_items(items, 3)


def test_ids_must_be_a_list_of_non_empty_strings():
    assert vb.check_ids(["a", "b"]) == ["a", "b"]
    assert vb.check_ids(iter(["a"])) == ["a"]
    for bad in ("abc", [""], [None], 5):
        with pytest.raises(InvalidInputError):
            vb.check_ids(bad)
    with pytest.raises(InvalidInputError):
        vb.check_id("x" * (vb.MAX_ID_LENGTH + 1))


# ---------------------------------------------------------------- collections


def test_collection_spec_validation():
    spec = vb.check_collection_spec("docs.v1", 384, "cosine", "hnsw", "english", 16, 64)
    assert spec.dimensions == 384 and spec.index == "hnsw"
    bad = [
        (("Docs", 3, "cosine", "hnsw", "english", 16, 64), "collection must be"),
        (("_private", 3, "cosine", "hnsw", "english", 16, 64), "collection must be"),
        (("", 3, "cosine", "hnsw", "english", 16, 64), "collection must be"),
        (("d", 0, "cosine", "hnsw", "english", 16, 64), "dimensions must be"),
        (("d", True, "cosine", "hnsw", "english", 16, 64), "dimensions must be"),
        (("d", 3, "euclid", "hnsw", "english", 16, 64), "distance must be one of"),
        (("d", 3, "cosine", "ivf", "english", 16, 64), "index must be one of"),
        (("d", 3000, "cosine", "hnsw", "english", 16, 64), "at most 2000 dimensions"),
        (("d", 3, "cosine", "hnsw", "english; drop", 16, 64), "text_search_config"),
        (("d", 3, "cosine", "hnsw", "english", 1, 64), "m must be"),
        (("d", 3, "cosine", "hnsw", "english", 40, 64), "at least 2 \\* m"),
    ]
    for args, message in bad:
        with pytest.raises(InvalidInputError, match=message):
            vb.check_collection_spec(*args)
    assert vb.check_collection_spec("d", 3000, "l2", "none", "simple", 16, 64).index == "none"
    assert vb.check_name("_memory", allow_reserved=True) == "_memory"


def test_k_min_score_and_ef_search_checks():
    assert vb.check_k(10) == 10
    for bad in (0, -1, vb.MAX_K + 1, 2.5, True, None):
        with pytest.raises(InvalidInputError, match="k must be"):
            vb.check_k(bad)
    assert vb.check_min_score(None) is None and vb.check_min_score(1) == 1.0
    for bad in (math.nan, math.inf, "0.5", True):
        with pytest.raises(InvalidInputError, match="min_score"):
            vb.check_min_score(bad)
    assert vb.check_ef_search(None) is None and vb.check_ef_search(200) == 200
    with pytest.raises(InvalidInputError, match="ef_search"):
        vb.check_ef_search(0)


# ---------------------------------------------------------------- filters


def test_filters_compile_to_allowed_values_per_field():
    assert vb.compile_filter(None) is None
    assert vb.compile_filter({}) is None
    assert vb.compile_filter({"lang": "en", "year": {"in": [2023, 2024]}}) == {
        "lang": ["en"],
        "year": [2023, 2024],
    }
    assert vb.compile_filter({"tags": {"in": [["a", "b"]]}}) == {"tags": [["a", "b"]]}


@pytest.mark.parametrize(
    "flt, message",
    [
        ("lang=en", "filter must be a dict"),
        ({"": 1}, "non-empty strings"),
        ({"lang": {"eq": "en"}}, r"must be a value \(equality\) or"),
        ({"lang": {"in": "en"}}, "must be a list of values"),
        ({"lang": {"in": [object()]}}, "is not JSON"),
    ],
)
def test_bad_filters_are_refused(flt, message):
    with pytest.raises(InvalidInputError, match=message):
        vb.compile_filter(flt)


def test_filter_meaning():
    compiled = vb.compile_filter({"lang": "en", "n": {"in": [1, 2]}})
    assert vb.matches_filter({"lang": "en", "n": 2, "x": 0}, compiled)
    assert vb.matches_filter({"lang": "en", "n": 1.0}, compiled)  # JSON numbers compare by value
    assert not vb.matches_filter({"lang": "en", "n": 3}, compiled)
    assert not vb.matches_filter({"lang": "fr", "n": 1}, compiled)
    assert not vb.matches_filter({"n": 1}, compiled)  # a missing field matches nothing
    assert not vb.matches_filter({"flag": 1}, vb.compile_filter({"flag": True}))
    assert vb.matches_filter({"anything": 1}, None)


# ---------------------------------------------------------------- scores and fusion


def test_scores_are_higher_for_better_matches():
    assert vb.score_from_distance("cosine", 0.0) == 1.0
    assert vb.score_from_distance("cosine", 2.0) == -1.0
    assert vb.score_from_distance("dot", -5.0) == 5.0  # <#> is the negative inner product
    assert vb.score_from_distance("l2", 3.0) == -3.0


def test_rrf_fuses_rankings_and_breaks_ties_deterministically():
    fused = vb.rrf_fuse([["a", "b", "c"], ["c", "b", "d"]], k=10, rrf_k=60)
    ids = [i for i, _ in fused]
    # c (3rd and 1st: 1/63 + 1/61) edges out b (2nd twice: 2/62); both beat a single 1st.
    assert ids == ["c", "b", "a", "d"]
    scores = dict(fused)
    assert scores["b"] == pytest.approx(2 / 62)
    assert scores["a"] == pytest.approx(1 / 61)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    # Equal scores: the one seen at a better rank, then the earlier ranking, comes first.
    assert [i for i, _ in vb.rrf_fuse([["x"], ["y"]], k=2)] == ["x", "y"]
    assert vb.rrf_fuse([["a", "b"]], k=1) == [("a", pytest.approx(1 / 61))]
    assert vb.rrf_fuse([[], []], k=5) == []


# ---------------------------------------------------------------- SQL rendering


def test_search_sql_renders_only_catalog_integers():
    sql = search_sql(info(id=42, dimensions=384), filtered=False, exact=False)
    assert "collection_id = 42" in sql and "vector(384)" in sql and "<=>" in sql
    assert "jsonb_each" not in sql
    assert "jsonb_each($6::jsonb)" in search_sql(info(), filtered=True, exact=False)
    exact = search_sql(info(distance="l2"), filtered=False, exact=True)
    assert "<->" in exact and "::vector(" not in exact  # no index expression: a full scan
    assert "<#>" in hybrid_sql(info(distance="dot"))
    assert "jsonb_each" not in hybrid_sql(info())
    assert hybrid_sql(info(), filtered=True).count("jsonb_each($8::jsonb)") == 2
    ddl = create_index_sql(info(id=9, dimensions=5, distance="dot"), 16, 64)
    assert ddl.startswith("CREATE INDEX CONCURRENTLY vector_items_hnsw_9 ")  # the owner's deferred build
    assert ddl.endswith("WHERE collection_id = 9")
    assert "vector_ip_ops" in ddl and "vector(5)" in ddl and "m = 16, ef_construction = 64" in ddl
    with pytest.raises(Exception, match="internal"):
        search_sql(info(id="1; DROP TABLE x"), filtered=False, exact=False)


# ---------------------------------------------------------------- the built-in embedder


def test_hashing_embedder_is_deterministic_normalised_and_similar_for_similar_text():
    emb = HashingEmbedder(256)
    assert isinstance(emb, Embedder)
    a = emb("PostgreSQL stores vectors beside the data")
    assert a == HashingEmbedder(256)("PostgreSQL stores vectors beside the data")
    assert len(a) == 256 and math.isclose(math.sqrt(sum(x * x for x in a)), 1.0)
    near = emb("postgresql stores the vector data")
    far = emb("a recipe for lemon cake with sugar")
    assert cosine_similarity(a, near) > cosine_similarity(a, far) + 0.2
    assert emb("") == [0.0] * 256
    with pytest.raises(InvalidInputError):
        HashingEmbedder(4)
    with pytest.raises(InvalidInputError):
        emb(b"bytes")  # type: ignore[arg-type]
