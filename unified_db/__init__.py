"""unified_db: one PostgreSQL database for records, cache, sessions, agent state,
personas and vectors."""

from .config import Settings
from .core import Health, UnifiedPostgreSQL
from .db import UnifiedDB
from .errors import (
    ConflictError,
    DatabaseUnavailableError,
    FeatureUnavailableError,
    InvalidInputError,
    MigrationError,
    NotFoundError,
    OperationTimeoutError,
    PoolClosedError,
    PoolTimeoutError,
    UnifiedDBError,
)

__version__ = "0.1.0"

__all__ = [
    "ConflictError",
    "DatabaseUnavailableError",
    "FeatureUnavailableError",
    "Health",
    "InvalidInputError",
    "MigrationError",
    "NotFoundError",
    "OperationTimeoutError",
    "PoolClosedError",
    "PoolTimeoutError",
    "Settings",
    "UnifiedDB",
    "UnifiedDBError",
    "UnifiedPostgreSQL",
    "__version__",
]
