"""The narrow port every mixin is typed against: the base's helpers, nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import asyncpg

from ..config import Settings
from ..core import Conn
from ..stats import Stats


class DBProtocol(Protocol):
    settings: Settings
    namespace: str
    schema: str
    instance_id: str
    _stats: Stats

    def _sql(self, query: str) -> str: ...

    def _acquire(self) -> AbstractAsyncContextManager[Conn]: ...

    def _transaction(
        self, *, isolation: str | None = None, readonly: bool = False
    ) -> AbstractAsyncContextManager[Conn]: ...

    async def _fetch(
        self, query: str, *args: Any, write: bool = False, timeout: float | None = None
    ) -> list[asyncpg.Record]: ...

    async def _fetchrow(
        self, query: str, *args: Any, write: bool = False, timeout: float | None = None
    ) -> asyncpg.Record | None: ...

    async def _fetchval(
        self, query: str, *args: Any, write: bool = False, timeout: float | None = None
    ) -> Any: ...

    async def _execute(
        self, query: str, *args: Any, write: bool = True, timeout: float | None = None
    ) -> str: ...

    async def _executemany(self, query: str, args: Sequence[Sequence[Any]]) -> None: ...

    def _component(self, name: str) -> Any: ...

    async def connect_direct(self, dsn: str | None = None) -> asyncpg.Connection: ...
