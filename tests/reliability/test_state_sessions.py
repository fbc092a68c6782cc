"""A hypothesis state machine: sessions against a model, with clock jumps.

The model keeps, per session, the seconds left before its idle and its absolute expiry.
A clock jump moves every stored time back by ``JUMP`` seconds. Timeouts, extensions and
jumps are multiples of 500 s, so a session is alive in the model exactly when it is in
the database (a value of 0 left means expired in both: the database clock has moved on).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import strategies as s
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, rule

from unified_db import ConflictError, NotFoundError, UnifiedDB

from .stateful import DEEP, QUICK, Run, run_machine

JUMP = 1000
USERS = s.sampled_from(["alice", "bob"])
TEXT = s.text(s.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=3)
DATA = s.dictionaries(s.sampled_from(["a", "b"]), s.integers(0, 9) | TEXT, max_size=2)
RESET_SQL = "DELETE FROM __schema__.sessions WHERE namespace = $1"
JUMP_SQL = """UPDATE __schema__.sessions
   SET created_at = created_at - make_interval(secs => $2),
       last_accessed_at = last_accessed_at - make_interval(secs => $2),
       expires_at = expires_at - make_interval(secs => $2),
       absolute_expires_at = absolute_expires_at - make_interval(secs => $2)
 WHERE namespace = $1"""


@dataclass
class Model:
    user: str
    data: dict
    idle: int  # the idle timeout
    idle_left: int
    abs_left: int
    version: int = 1
    tokens: list[str] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.idle_left > 0 and self.abs_left > 0

    def slide(self) -> None:
        """A touch: ``greatest(expires_at, least(now() + idle_timeout, absolute_expires_at))``."""
        self.idle_left = max(self.idle_left, min(self.idle, self.abs_left))


def test_sessions_match_the_model(db_dsn: str):
    run_machine(db_dsn, build, QUICK)


@pytest.mark.slow
def test_sessions_match_the_model_deep(db_dsn: str):
    run_machine(db_dsn, build, DEEP)


def build(db: UnifiedDB, run: Run) -> type[RuleBasedStateMachine]:
    class SessionMachine(RuleBasedStateMachine):
        ids = Bundle("ids")

        def __init__(self) -> None:
            super().__init__()
            self.model: dict[uuid.UUID, Model] = {}

        @initialize()
        def empty(self) -> None:
            run(db._execute(RESET_SQL, db.namespace))

        def live(self, sid: uuid.UUID) -> Model | None:
            m = self.model.get(sid)
            return m if m is not None and m.alive else None

        @rule(
            target=ids,
            user=USERS,
            data=DATA,
            idle=s.sampled_from([1500, 3000]),
            absolute=s.sampled_from([1500, 4000, 8000]),
        )
        def create(self, user, data, idle, absolute):
            got = run(db.session_create(user, data, idle_timeout=idle, absolute_timeout=absolute))
            self.model[got.id] = Model(user, data, idle, min(idle, absolute), absolute, tokens=[got.token])
            return got.id

        @rule(sid=ids, touch=s.booleans(), old=s.booleans())
        def get_by_token(self, sid, touch, old):
            m = self.model.get(sid)
            if m is None:
                return
            token = m.tokens[0] if old else m.tokens[-1]
            got = run(db.session_get_by_token(token, touch=touch))
            if m.alive and token == m.tokens[-1]:
                assert got is not None and got.id == sid and got.data == m.data and got.user_id == m.user
                if touch:
                    m.slide()
            else:
                assert got is None

        @rule(sid=ids)
        def get(self, sid):
            got = run(db.session_get(sid))
            m = self.live(sid)
            assert (got is None) == (m is None)
            if m is not None:
                assert got.data == m.data and got.version == m.version

        @rule(sid=ids, data=DATA, expect=s.sampled_from([None, "right", "wrong"]))
        def update(self, sid, data, expect):
            m = self.live(sid)
            expected = None
            if expect is not None:
                expected = (m.version if m else 1) + (0 if expect == "right" else 5)
            if m is None:
                with pytest.raises(NotFoundError):
                    run(db.session_update(sid, data, expected_version=expected))
                return
            if expect == "wrong":
                with pytest.raises(ConflictError):
                    run(db.session_update(sid, data, expected_version=expected))
                return
            got = run(db.session_update(sid, data, expected_version=expected))
            m.data, m.version = data, m.version + 1
            assert got.version == m.version

        @rule(sid=ids)
        def delete(self, sid):
            assert run(db.session_delete(sid)) == (self.live(sid) is not None)
            self.model.pop(sid, None)

        @rule(sid=ids)
        def rotate(self, sid):
            m = self.model.get(sid)
            if m is None:
                return
            if not m.alive:
                with pytest.raises(NotFoundError):
                    run(db.session_rotate(m.tokens[-1]))
                return
            got = run(db.session_rotate(m.tokens[-1]))
            assert got.id == sid
            m.tokens.append(got.token)
            m.slide()

        @rule(sid=ids, seconds=s.sampled_from([500, 2500]))
        def extend(self, sid, seconds):
            m = self.live(sid)
            if m is None:
                with pytest.raises(NotFoundError):
                    run(db.session_extend(sid, seconds))
                return
            run(db.session_extend(sid, seconds))
            m.idle_left = min(m.idle_left + seconds, m.abs_left)

        @rule(sid=ids)
        def touch(self, sid):
            m = self.live(sid)
            if m is None:
                with pytest.raises(NotFoundError):
                    run(db.session_touch(sid))
                return
            run(db.session_touch(sid))
            m.slide()

        @rule(user=USERS, keep=s.one_of(s.none(), ids))
        def revoke_user(self, user, keep):
            doomed = [k for k, m in self.model.items() if m.user == user and k != keep]
            assert run(db.session_revoke_user(user, except_session_id=keep)) == sum(
                self.model[k].alive for k in doomed
            )
            for k in doomed:
                del self.model[k]

        @rule(sids=s.lists(ids, max_size=3, unique=True))
        def bulk_delete(self, sids):
            assert run(db.session_bulk_delete(sids)) == sum(self.live(k) is not None for k in sids)
            for k in sids:
                self.model.pop(k, None)

        @rule(user=s.one_of(s.none(), USERS))
        def active_count(self, user):
            want = sum(m.alive and (user is None or m.user == user) for m in self.model.values())
            assert run(db.session_get_active_count(user)) == want

        @rule(user=s.one_of(s.none(), USERS))
        def list_active(self, user):
            got = {x.id for x in run(db.session_list(user_id=user, active_only=True))}
            assert got == {k for k, m in self.model.items() if m.alive and (user is None or m.user == user)}

        @rule()
        def cleanup(self):
            dead = [k for k, m in self.model.items() if not m.alive]
            assert run(db.session_cleanup_inactive()) == len(dead)
            for k in dead:
                del self.model[k]

        @rule()
        def clock_jump(self):
            run(db._execute(JUMP_SQL, db.namespace, JUMP))
            for m in self.model.values():
                m.idle_left -= JUMP
                m.abs_left -= JUMP

        def teardown(self) -> None:
            listed = run(db.session_list(active_only=False, limit=1000))
            assert {x.id for x in listed} == set(self.model)

    return SessionMachine
