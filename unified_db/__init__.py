"""unified_db: one PostgreSQL database for records, cache, sessions, agent state,
personas and vectors."""

from .config import Settings
from .core import UnifiedPostgreSQL
from .db import UnifiedDB
from .errors import (
    ConflictError,
    DatabaseUnavailableError,
    FeatureUnavailableError,
    InvalidInputError,
    MigrationError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    PoolClosedError,
    PoolTimeoutError,
    UnifiedDBError,
)
from .models import *  # noqa: F403 - every public result model
from .models import __all__ as _models

__version__ = "0.1.0"

__all__ = [
    "ConflictError",
    "DatabaseUnavailableError",
    "FeatureUnavailableError",
    "InvalidInputError",
    "MigrationError",
    "NotFoundError",
    "OperationTimeoutError",
    "PermissionDeniedError",
    "PoolClosedError",
    "PoolTimeoutError",
    "Settings",
    "UnifiedDB",
    "UnifiedDBError",
    "UnifiedPostgreSQL",
    "__version__",
    *_models,
]
