"""Vector storage and search behind one small interface (:class:`base.VectorBackend`).

``pgvector`` (default) keeps items in the same PostgreSQL database; ``weaviate`` keeps
them in a Weaviate server. ``VectorMixin`` (``unified_db.extensions.vectors``) validates
every call and dispatches to the configured backend. See docs/vectors.md.
"""

from .base import VectorCollection, VectorHit, VectorItem, VectorRecord, rrf_fuse

__all__ = ["VectorCollection", "VectorHit", "VectorItem", "VectorRecord", "rrf_fuse"]
