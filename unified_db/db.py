"""``UnifiedDB``: the base class plus every feature mixin. This is what users import."""

from __future__ import annotations

from .core import UnifiedPostgreSQL
from .extensions.agents import AgentMixin
from .extensions.cache import CacheMixin
from .extensions.memory import MemorySnapshotMixin
from .extensions.personas import PersonaMixin
from .extensions.pool import PoolDiagnosticsMixin
from .extensions.sessions import SessionMixin
from .extensions.vectors import VectorMixin


class UnifiedDB(
    CacheMixin,
    SessionMixin,
    MemorySnapshotMixin,
    AgentMixin,
    PersonaMixin,
    VectorMixin,
    PoolDiagnosticsMixin,
    UnifiedPostgreSQL,
):
    """One PostgreSQL database as cache, session store, agent memory, persona store and
    vector index. ``UnifiedDB(dsn=None, **settings)``; see docs/configuration.md."""
