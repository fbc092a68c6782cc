"""A test-only UnifiedDB subclass with one real cleanup step (the contract every feature
implements), over a table the tests create: ``public.ops_sweep``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from unified_db import UnifiedDB

if TYPE_CHECKING:
    from unified_db.extensions._protocol import DBProtocol as _Base
else:
    _Base = object

CREATE = """
CREATE TABLE IF NOT EXISTS public.ops_sweep (
    id bigserial PRIMARY KEY,
    namespace text NOT NULL,
    expires_at timestamptz NOT NULL
)
"""

FILL = """
INSERT INTO public.ops_sweep (namespace, expires_at)
SELECT $1, now() + make_interval(secs => $3) FROM generate_series(1, $2)
"""

COUNT_EXPIRED = "SELECT count(*) FROM public.ops_sweep WHERE namespace = $1 AND expires_at <= now()"

DELETE_BATCH = """
WITH doomed AS (
  SELECT id FROM public.ops_sweep
   WHERE namespace = $1 AND expires_at <= now()
   ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
)
DELETE FROM public.ops_sweep WHERE id IN (SELECT id FROM doomed)
"""


class SweepMixin(_Base):
    cleanup_steps: ClassVar[tuple[str, ...]] = ("ops_sweep",)

    async def _cleanup_ops_sweep(self, *, dry_run: bool, batch_size: int) -> int:
        if dry_run:
            return int(await self._fetchval(COUNT_EXPIRED, self.namespace))
        total = 0
        while True:
            status = await self._execute(DELETE_BATCH, self.namespace, batch_size)
            n = int(status.split()[-1])
            total += n
            if n < batch_size:
                return total


class SweepDB(SweepMixin, UnifiedDB):
    """UnifiedDB plus the test cleanup step."""
