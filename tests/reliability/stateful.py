"""Running a hypothesis state machine against a real UnifiedDB, quick and deep.

Each feature's state machine compares the library with a plain-Python model under random
operations and clock jumps. The library compares times with the database clock, so a
test cannot move that clock: a jump moves the stored timestamps back instead
(``expires_at``, ``created_at``, ...), which is the same thing seen from the rows.
Jumps are whole multiples of large steps, so the seconds the test itself takes never
decide an outcome.

``QUICK`` examples run in ``make test``; ``DEEP`` (the issue's 1,000) behind ``slow``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from unified_db import UnifiedDB

QUICK = 30
DEEP = 1000
STEPS = 25

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def run_machine(
    dsn: str,
    build: Callable[[UnifiedDB, Run], type[RuleBasedStateMachine]],
    examples: int,
    steps: int = STEPS,
    **db_settings: Any,
) -> None:
    """Open a UnifiedDB on its own loop, build the machine class over it and run it."""
    loop = asyncio.new_event_loop()
    db = UnifiedDB(dsn, min_size=1, max_size=2, **db_settings)
    loop.run_until_complete(db.open())

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return loop.run_until_complete(coro)

    try:
        run_state_machine_as_test(
            build(db, run),
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        loop.run_until_complete(db.close())
        loop.close()
