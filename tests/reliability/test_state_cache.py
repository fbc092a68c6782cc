"""A hypothesis state machine: the cache against a dict model, on a real PostgreSQL.

The model keeps each key's seconds left (None: no TTL); a clock jump moves every stored
``expires_at`` back by ``JUMP`` seconds. TTLs and jumps are far apart (3600, 7200.5 vs
1000), so the seconds the test takes never decide whether an entry is alive.
"""

from __future__ import annotations

import pytest
from hypothesis import strategies as s
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from unified_db import InvalidInputError, NotFoundError, UnifiedDB

from .stateful import DEEP, QUICK, Run, run_machine

KEYS = s.sampled_from(["a", "b", "c", "ключ", "with space", "x" * 1024])
TAGS = s.lists(s.sampled_from(["t1", "t2", "t3"]), max_size=2, unique=True)
SOME_TAGS = s.lists(s.sampled_from(["t1", "t2", "t3"]), min_size=1, max_size=2, unique=True)
SCALARS = (
    s.none()
    | s.booleans()
    | s.integers(-(10**6), 10**6)
    | s.floats(allow_nan=False, allow_infinity=False)
    | s.text(max_size=20)
)
VALUES = s.recursive(
    SCALARS,
    lambda inner: s.lists(inner, max_size=3) | s.dictionaries(s.text(max_size=5), inner, max_size=3),
    max_leaves=6,
) | s.binary(max_size=20)
TTLS = s.sampled_from([None, 3600, 7200.5])
JUMP = 1000
JUMP_SQL = (
    "UPDATE __schema__.cache_entries SET expires_at = expires_at - make_interval(secs => $2)"
    " WHERE namespace = $1 AND expires_at IS NOT NULL"
)


def test_cache_behaves_like_a_dict(db_dsn: str):
    run_machine(db_dsn, build, QUICK)


@pytest.mark.slow
def test_cache_behaves_like_a_dict_deep(db_dsn: str):
    run_machine(db_dsn, build, DEEP)


def build(db: UnifiedDB, run: Run) -> type[RuleBasedStateMachine]:
    class CacheMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            # key -> (value, tags, seconds left or None)
            self.model: dict[str, tuple[object, frozenset[str], float | None]] = {}

        @initialize()
        def empty(self) -> None:
            run(db.cache_clear())

        @rule(key=KEYS, value=VALUES, ttl=TTLS, tags=TAGS)
        def set(self, key, value, ttl, tags):
            run(db.cache_set(key, value, ttl, tags=tags))
            self.model[key] = (value, frozenset(tags), ttl)

        @rule(mapping=s.dictionaries(KEYS, VALUES, max_size=4), ttl=TTLS, tags=TAGS)
        def set_many(self, mapping, ttl, tags):
            assert run(db.cache_set_many(mapping, ttl, tags=tags)) == len(mapping)
            for k, v in mapping.items():
                self.model[k] = (v, frozenset(tags), ttl)

        @rule(key=KEYS)
        def get(self, key):
            missing = object()
            got = run(db.cache_get(key, missing))
            if key in self.model:
                assert got == self.model[key][0]
                assert type(got) is type(self.model[key][0])
            else:
                assert got is missing

        @rule(keys=s.lists(KEYS, max_size=4))
        def get_many(self, keys):
            got = run(db.cache_get_many(keys))
            assert got == {k: self.model[k][0] for k in keys if k in self.model}

        @rule(key=KEYS)
        def delete(self, key):
            assert run(db.cache_delete(key)) == (key in self.model)
            self.model.pop(key, None)

        @rule(keys=s.lists(KEYS, max_size=4))
        def delete_many(self, keys):
            expected = len({k for k in keys if k in self.model})
            assert run(db.cache_delete_many(keys)) == expected
            for k in keys:
                self.model.pop(k, None)

        @rule(key=KEYS)
        def exists(self, key):
            assert run(db.cache_exists(key)) == (key in self.model)

        @rule(key=KEYS, delta=s.integers(-1000, 1000))
        def incr(self, key, delta):
            current = self.model.get(key)
            if current is None:
                assert run(db.cache_incr(key, delta)) == delta
                self.model[key] = (delta, frozenset(), None)
                return
            value, tags, has_ttl = current
            if type(value) is int:
                assert run(db.cache_incr(key, delta)) == value + delta
                self.model[key] = (value + delta, tags, has_ttl)
            else:
                with pytest.raises(InvalidInputError):
                    run(db.cache_incr(key, delta))

        @rule(key=KEYS)
        def ttl(self, key):
            if key not in self.model:
                with pytest.raises(NotFoundError):
                    run(db.cache_ttl(key))
                return
            left = run(db.cache_ttl(key))
            want = self.model[key][2]
            assert (left is None) == (want is None)
            if want is not None:
                assert want - 60 < left <= want, (left, want)

        @rule(key=KEYS)
        def persist(self, key):
            current = self.model.get(key)
            assert run(db.cache_persist(key)) == bool(current and current[2] is not None)
            if current:
                self.model[key] = (current[0], current[1], None)

        @rule(key=KEYS)
        def touch(self, key):
            current = self.model.get(key)
            assert run(db.cache_touch(key, 3600)) == (current is not None)
            if current:
                self.model[key] = (current[0], current[1], 3600)

        @rule(tags=SOME_TAGS, match_all=s.booleans())
        def get_by_tags(self, tags, match_all):
            want = set(tags)

            def match(t: frozenset[str]) -> bool:
                return want <= t if match_all else bool(want & t)

            got = run(db.cache_get_by_tags(tags, match_all=match_all))
            assert got == {k: v for k, (v, t, _) in self.model.items() if match(t)}

        @rule(tags=SOME_TAGS)
        def invalidate_tags(self, tags):
            doomed = [k for k, (_, t, _) in self.model.items() if t & set(tags)]
            assert run(db.cache_invalidate_tags(tags)) == len(doomed)
            for k in doomed:
                del self.model[k]

        @rule()
        def clear(self):
            assert run(db.cache_clear()) == len(self.model)
            self.model.clear()

        @rule()
        def clock_jump(self):
            """JUMP seconds pass: entries whose TTL runs out are gone for every read."""
            run(db._execute(JUMP_SQL, db.namespace, JUMP))
            for k, (v, t, left) in list(self.model.items()):
                if left is None:
                    continue
                if left - JUMP <= 0:
                    del self.model[k]
                else:
                    self.model[k] = (v, t, left - JUMP)

        @rule()
        def cleanup_expired(self):
            run(db.cache_cleanup_expired())

        def teardown(self) -> None:
            info = run(db.cache_info())
            assert info.entries == len(self.model)

    return CacheMachine
