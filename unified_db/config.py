"""Settings: one validated model, filled from arguments and ``UNIFIED_DB_*`` variables.

Arguments win over the environment; the environment wins over the defaults. Every
setting is checked before any connection is made, so a typo fails fast and names
itself. docs/configuration.md lists them all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import InvalidInputError

ENV_PREFIX = "UNIFIED_DB_"
#: A default-sized pool takes at most 1/SERVER_SHARE of the server's usable connections.
SERVER_SHARE = 4
SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def quote_ident(name: str) -> str:
    """Quote a validated identifier (the schema name): the one place SQL names are built."""
    if not SCHEMA_RE.match(name) or name.startswith("pg_"):
        raise InvalidInputError(
            f"schema {name!r} is not a plain lowercase identifier "
            "(letters, digits and _; at most 63 characters; not starting with pg_)"
        )
    return '"' + name + '"'


class Settings(BaseModel):
    """Every setting of a ``UnifiedDB`` instance. See docs/configuration.md."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # connection
    dsn: str | None = None
    schema_name: str = Field("unified_db", alias="schema")
    namespace: str = "default"
    application_name: str = "unified_db"
    profile: Literal["default", "serverless"] = "default"
    data_dir: Path | None = None
    auto_migrate: bool = True

    # pool
    min_size: int | None = Field(None, ge=0, le=1000)
    max_size: int | None = Field(None, ge=1, le=1000)
    max_inactive_connection_lifetime: float = Field(300.0, ge=0)
    command_timeout: float = Field(30.0, gt=0)
    acquire_timeout: float = Field(10.0, gt=0)
    connect_timeout: float = Field(10.0, gt=0)
    statement_cache_size: int = Field(100, ge=0)
    listen_dsn: str | None = None
    stats_flush_interval: float = Field(0.0, ge=0)

    # cache
    cache_default_ttl: float | None = Field(None, gt=0)
    cache_max_value_bytes: int = Field(16 * 1024 * 1024, gt=0)
    cache_durable: bool = False
    cache_local_size: int = Field(0, ge=0)
    cache_local_ttl: float = Field(60.0, gt=0)
    cache_max_entries: int | None = Field(None, gt=0)
    cache_max_bytes: int | None = Field(None, gt=0)
    cache_sweep_interval: float = Field(0.0, ge=0)
    # None: publish near-cache invalidations when this process has a near-cache itself
    cache_publish_invalidations: bool | None = None

    # sessions
    session_idle_timeout: float = Field(1800.0, gt=0)
    session_absolute_timeout: float = Field(8 * 3600.0, gt=0)
    session_touch_interval: float = Field(60.0, ge=0)
    session_max_data_bytes: int = Field(1024 * 1024, gt=0)

    # agents and workflow runs
    workflow_retention_days: float = Field(30.0, gt=0)

    # memory snapshots
    memory_max_state_bytes: int = Field(50 * 1024 * 1024, gt=0, le=256 * 1024 * 1024)
    memory_retention_keep_last: int | None = Field(None, ge=1)
    memory_retention_days: float | None = Field(None, gt=0)

    # vectors
    vector_backend: Literal["pgvector", "weaviate"] = "pgvector"
    vector_ef_search: int = Field(100, ge=1, le=1000)
    vector_upsert_batch_size: int = Field(500, ge=1, le=100_000)
    vector_index_build_memory: str = Field("512MB", pattern=r"^[1-9][0-9]{0,6}(kB|MB|GB)$")
    weaviate_url: str | None = None
    weaviate_api_key: str | None = None

    @field_validator("schema_name")
    @classmethod
    def _schema(cls, v: str) -> str:
        quote_ident(v)
        return v

    @field_validator("namespace", "application_name")
    @classmethod
    def _label(cls, v: str) -> str:
        if not v or len(v) > 63 or "\x00" in v or not v.isprintable():
            raise ValueError("must be 1 to 63 printable characters")
        return v

    @field_validator("dsn", "listen_dsn")
    @classmethod
    def _dsn(cls, v: str | None) -> str | None:
        if v is None:
            return None
        check_dsn(v)
        return v

    @field_validator("cache_default_ttl", mode="before")
    @classmethod
    def _ttl(cls, v: Any) -> Any:
        return v.total_seconds() if isinstance(v, timedelta) else v

    @model_validator(mode="after")
    def _pool_sizes(self) -> Settings:
        if self.min_size is not None and self.max_size is not None and self.min_size > self.max_size:
            raise ValueError(f"min_size ({self.min_size}) is larger than max_size ({self.max_size})")
        return self

    @property
    def schema(self) -> str:  # noqa: D401 - the public spelling
        """The schema every table lives in."""
        return self.schema_name

    @classmethod
    def load(
        cls, dsn: str | None = None, *, environ: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Settings:
        """Build settings from arguments over ``UNIFIED_DB_*`` variables over defaults.

        Raises InvalidInputError naming every bad setting.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            key = field.alias or name
            raw = env.get(ENV_PREFIX + key.upper())
            if raw is not None and raw != "":
                values[key] = raw
        if dsn is not None:
            kwargs["dsn"] = dsn
        known = {f.alias or n for n, f in cls.model_fields.items()}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise InvalidInputError(f"unknown setting(s): {', '.join(unknown)}; see docs/configuration.md")
        values.update(kwargs)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidInputError(f"invalid settings: {problems}") from None

    def pool_sizes(
        self, cpu_count: int | None = None, server_max_connections: int | None = None
    ) -> tuple[int, int]:
        """The (min, max) pool size: the settings, or a default for this machine and profile.

        The default max is ``2 x CPUs + 2`` within 4..20 (2 for the serverless profile),
        and at most a quarter of *server_max_connections* (the server's usable
        connections) when known: several processes and the operators share the server.
        """
        cpus = cpu_count or os.cpu_count() or 2
        if self.profile == "serverless":
            default_max, default_min = 2, 0
        else:
            default_max, default_min = max(4, min(cpus * 2 + 2, 20)), 1
        if server_max_connections is not None:
            default_max = max(1, min(default_max, server_max_connections // SERVER_SHARE))
        max_size = self.max_size if self.max_size is not None else default_max
        if self.min_size is not None:
            max_size = max(max_size, self.min_size) if self.max_size is None else max_size
            return self.min_size, max_size
        return min(default_min, max_size), max_size

    @property
    def inactive_lifetime(self) -> float:
        """Idle connection lifetime; short for the serverless profile."""
        return 10.0 if self.profile == "serverless" else self.max_inactive_connection_lifetime


def check_dsn(dsn: str) -> None:
    """Reject a DSN asyncpg could not use, before connecting."""
    if not isinstance(dsn, str) or not dsn.strip():
        raise ValueError("DSN must be a non-empty string like postgresql://user@host:5432/db")
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(
            f"DSN must start with postgresql:// (got {parts.scheme or 'no scheme'!r}); "
            "example: postgresql://user@host:5432/db"
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"DSN has a bad port: {exc}") from None
