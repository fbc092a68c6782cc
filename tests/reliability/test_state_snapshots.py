"""A hypothesis state machine: memory snapshots against a model, with clock jumps.

The model keeps each agent's version counter (it never goes back, even after deletes)
and each snapshot's state and age. A clock jump moves every ``created_at`` back by
``JUMP`` seconds, so ``memory_snapshot_cleanup(older_than=...)`` sees old snapshots;
ages are multiples of 1000 s against a 1500 s threshold, never on the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import strategies as s
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, rule

from unified_db import NotFoundError, UnifiedDB

from .stateful import DEEP, QUICK, Run, run_machine

JUMP = 1000
AGENTS = s.sampled_from(["a1", "a2"])
STATES = s.dictionaries(s.sampled_from(["x", "y"]), s.integers(0, 99), max_size=2)
RESET_SQL = [
    "DELETE FROM __schema__.memory_snapshots WHERE namespace = $1",
    "DELETE FROM __schema__.memory_snapshot_heads WHERE namespace = $1",
]
JUMP_SQL = (
    "UPDATE __schema__.memory_snapshots SET created_at = created_at - make_interval(secs => $2)"
    " WHERE namespace = $1"
)


@dataclass
class Snap:
    agent: str
    version: int
    state: dict
    age: int = 0


def test_snapshots_match_the_model(db_dsn: str):
    run_machine(db_dsn, build, QUICK)


@pytest.mark.slow
def test_snapshots_match_the_model_deep(db_dsn: str):
    run_machine(db_dsn, build, DEEP)


def build(db: UnifiedDB, run: Run) -> type[RuleBasedStateMachine]:
    class SnapshotMachine(RuleBasedStateMachine):
        ids = Bundle("ids")

        def __init__(self) -> None:
            super().__init__()
            self.snaps: dict[int, Snap] = {}
            self.heads: dict[str, int] = {}

        @initialize()
        def empty(self) -> None:
            for sql in RESET_SQL:
                run(db._execute(sql, db.namespace))

        def latest(self, agent: str) -> tuple[int, Snap] | None:
            mine = [(i, x) for i, x in self.snaps.items() if x.agent == agent]
            return max(mine, key=lambda p: p[1].version) if mine else None

        def _append(self, sid: int, agent: str, version: int, state: dict) -> None:
            self.heads[agent] = self.heads.get(agent, 0) + 1
            assert version == self.heads[agent], "versions are gap-free and never reused"
            self.snaps[sid] = Snap(agent, version, state)

        @rule(target=ids, agent=AGENTS, state=STATES)
        def create(self, agent, state):
            got = run(db.memory_snapshot_create(agent, state))
            self._append(got.id, agent, got.version, state)
            return got.id

        @rule(sid=ids)
        def get(self, sid):
            got = run(db.memory_snapshot_get(sid))
            want = self.snaps.get(sid)
            assert (got is None) == (want is None)
            if want is not None:
                assert (got.agent_id, got.version, got.state) == (want.agent, want.version, want.state)

        @rule(agent=AGENTS)
        def latest_of(self, agent):
            got = run(db.memory_snapshot_latest(agent))
            want = self.latest(agent)
            assert (got is None) == (want is None)
            if want is not None:
                assert (got.id, got.state) == (want[0], want[1].state)

        @rule(agent=AGENTS, version=s.integers(1, 6))
        def get_version(self, agent, version):
            got = run(db.memory_snapshot_get_version(agent, version))
            want = [i for i, x in self.snaps.items() if x.agent == agent and x.version == version]
            assert (got.id if got else None) == (want[0] if want else None)

        @rule(sid=ids)
        def delete(self, sid):
            assert run(db.memory_snapshot_delete(sid)) == (sid in self.snaps)
            self.snaps.pop(sid, None)

        @rule(target=ids, sid=ids)
        def restore(self, sid):
            old = self.snaps.get(sid)
            if old is None:
                with pytest.raises(NotFoundError):
                    run(db.memory_snapshot_restore(sid))
                return sid
            got = run(db.memory_snapshot_restore(sid))
            assert got.agent_id == old.agent
            self._append(got.id, old.agent, got.version, old.state)
            return got.id

        @rule(agent=s.one_of(s.none(), AGENTS))
        def list_newest_first(self, agent):
            got = [x.id for x in run(db.memory_snapshot_list(agent, limit=500))]
            want = sorted(
                (i for i, x in self.snaps.items() if agent is None or x.agent == agent),
                key=lambda i: -i,
            )
            assert sorted(got) == sorted(want)
            if agent is not None:
                assert got == want

        @rule(
            keep=s.one_of(s.none(), s.integers(1, 3)),
            older=s.one_of(s.none(), s.just(1500)),
            agent=s.one_of(s.none(), AGENTS),
            dry=s.booleans(),
        )
        def cleanup(self, keep, older, agent, dry):
            if keep is None and older is None:
                return
            k = keep or 1
            doomed = []
            for i, x in self.snaps.items():
                if agent is not None and x.agent != agent:
                    continue
                newer = sum(1 for y in self.snaps.values() if y.agent == x.agent and y.version > x.version)
                if newer >= k and (older is None or x.age > older):
                    doomed.append(i)
            got = run(
                db.memory_snapshot_cleanup(keep_last=keep, older_than=older, agent_id=agent, dry_run=dry)
            )
            assert got == len(doomed)
            if not dry:
                for i in doomed:
                    del self.snaps[i]

        @rule()
        def clock_jump(self):
            run(db._execute(JUMP_SQL, db.namespace, JUMP))
            for x in self.snaps.values():
                x.age += JUMP

        def teardown(self) -> None:
            stats = run(db.memory_snapshot_stats())
            assert stats.count == len(self.snaps)

    return SnapshotMachine
