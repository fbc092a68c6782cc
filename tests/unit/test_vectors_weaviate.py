"""The Weaviate backend's request building and result mapping, without a server."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from unified_db import InvalidInputError
from unified_db.vectors import base as vb
from unified_db.vectors import weaviate as wb

pytest.importorskip("weaviate", reason="weaviate-client is not installed (extra unified-db[weaviate])")


def test_ids_map_to_stable_uuids_and_names_are_unique():
    assert wb.object_uuid("doc-1") == wb.object_uuid("doc-1")
    assert wb.object_uuid("doc-1") != wb.object_uuid("doc-2")
    assert isinstance(wb.object_uuid("x"), uuid.UUID)
    a, b = wb.new_external_name(), wb.new_external_name()
    assert a != b and a.startswith("Udb_") and a[0].isupper() and a.replace("_", "").isalnum()


def test_properties_keep_metadata_whole_and_expose_scalar_fields():
    props = wb.properties_for("i1", "text", {"lang": "en", "n": 3, "ok": True, "tags": ["a"], "bad key": 1})
    assert props["item_id"] == "i1" and props["content"] == "text"
    assert props["metadata_json"] == '{"lang":"en","n":3,"ok":true,"tags":["a"],"bad key":1}'
    assert props["meta_lang"] == "en" and props["meta_n"] == 3 and props["meta_ok"] is True
    assert "meta_tags" not in props and not any(" " in k for k in props)


def test_filters_translate_to_equal_and_contains_any():
    compiled = vb.compile_filter({"lang": "en", "year": {"in": [2023, 2024]}})
    assert wb.filter_spec(compiled) == [("meta_lang", "equal", "en"), ("meta_year", "any", [2023, 2024])]
    assert wb.filter_spec(None) == []
    flt = wb.build_filter(compiled)
    parts = [(f.target, f.operator.value, f.value) for f in flt.filters]
    assert parts == [("meta_lang", "Equal", "en"), ("meta_year", "ContainsAny", [2023, 2024])]
    single = wb.build_filter(vb.compile_filter({"lang": "en"}))
    assert (single.target, single.operator.value, single.value) == ("meta_lang", "Equal", "en")
    assert wb.build_filter(None) is None
    with pytest.raises(InvalidInputError, match="cannot be filtered on"):
        wb.filter_spec(vb.compile_filter({"bad key": 1}))
    with pytest.raises(InvalidInputError, match="strings, numbers and booleans"):
        wb.filter_spec(vb.compile_filter({"tags": {"in": [["a"]]}}))


def test_scores_match_the_pgvector_convention():
    assert wb.score_from_weaviate("cosine", 0.25) == pytest.approx(0.75)
    assert wb.score_from_weaviate("l2", 9.0) == pytest.approx(-3.0)  # Weaviate reports l2 squared
    assert wb.score_from_weaviate("dot", -4.0) == pytest.approx(4.0)
    assert wb.score_from_weaviate("cosine", None) == 1.0


def test_results_map_to_hits_and_records():
    obj = SimpleNamespace(
        properties={"item_id": "a", "content": "hello", "metadata_json": '{"k": 1}'},
        metadata=SimpleNamespace(distance=0.1),
        vector={"default": [1.0, 2.0]},
    )
    hit = wb.hit_from_object(obj, "cosine")
    assert (hit.id, hit.content, hit.metadata) == ("a", "hello", {"k": 1})
    assert hit.score == pytest.approx(0.9)
    rec = wb.record_from_object(obj)
    assert rec.embedding == [1.0, 2.0] and rec.metadata == {"k": 1} and rec.id == "a"
    bare = SimpleNamespace(properties={"item_id": "b"}, metadata=SimpleNamespace(distance=None), vector=[0.5])
    assert wb.hit_from_object(bare, "cosine").content == "" and wb.record_from_object(bare).embedding == [0.5]


def test_collection_config_follows_the_spec():
    spec = vb.check_collection_spec("docs", 8, "l2", "hnsw", "english", 24, 100)
    cfg = wb.collection_config(spec)
    text = repr(cfg["vector_config"])
    assert "l2-squared" in text and "24" in text and "100" in text
    assert [p.name for p in cfg["properties"]] == ["item_id", "content", "metadata_json"]
    flat = wb.collection_config(vb.check_collection_spec("docs", 8, "cosine", "none", "english", 16, 64))
    assert "flat" in repr(flat["vector_config"]).lower()
