"""Every public result model, importable from one place (and from ``unified_db``)."""

from .core import Health
from .extensions._pool_logic import (
    ConnectionDiagnostic,
    ExtendedPoolStats,
    PoolStats,
    Recommendation,
)
from .extensions.agents import Agent, WorkflowRun
from .extensions.cache import CacheInfo
from .extensions.memory import (
    AgentSnapshotStats,
    MemorySnapshot,
    MemorySnapshotStats,
    SnapshotHit,
    StateDiff,
)
from .extensions.persona_models import (
    ImportReport,
    Persona,
    PersonaAuditEntry,
    PersonaMetricSummary,
    PersonaVersion,
)
from .extensions.sessions import Session, SessionAnalytics
from .vectors.base import VectorCollection, VectorHit, VectorItem, VectorRecord

__all__ = [
    "Agent",
    "AgentSnapshotStats",
    "CacheInfo",
    "ConnectionDiagnostic",
    "ExtendedPoolStats",
    "Health",
    "ImportReport",
    "MemorySnapshot",
    "MemorySnapshotStats",
    "Persona",
    "PersonaAuditEntry",
    "PersonaMetricSummary",
    "PersonaVersion",
    "PoolStats",
    "Recommendation",
    "Session",
    "SessionAnalytics",
    "SnapshotHit",
    "StateDiff",
    "VectorCollection",
    "VectorHit",
    "VectorItem",
    "VectorRecord",
    "WorkflowRun",
]
