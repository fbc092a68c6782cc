"""A hypothesis state machine: personas against a model.

Versions, history, soft delete and restore, rollback, the one default and user
preferences. Personas have no time-dependent behaviour the library decides (no expiry),
so there is no clock jump here; what matters is the order of operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import strategies as s
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from unified_db import ConflictError, NotFoundError, UnifiedDB

from .stateful import DEEP, QUICK, Run, run_machine

NAMES = s.sampled_from(["p1", "p2", "p3"])
DESCS = s.sampled_from(["", "calm", "terse"])
USERS = s.sampled_from(["u1", "u2"])
RESET_SQL = [
    f"DELETE FROM __schema__.{t} WHERE namespace = $1"  # noqa: S608
    for t in ("persona_user_preferences", "persona_metrics", "persona_audit", "persona_versions", "personas")
]


@dataclass
class P:
    desc: str
    version: int = 1
    active: bool = True
    history: dict[int, str] = field(default_factory=dict)


def test_personas_match_the_model(db_dsn: str):
    run_machine(db_dsn, build, QUICK)


@pytest.mark.slow
def test_personas_match_the_model_deep(db_dsn: str):
    run_machine(db_dsn, build, DEEP)


def build(db: UnifiedDB, run: Run) -> type[RuleBasedStateMachine]:
    class PersonaMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.model: dict[str, P] = {}
            self.default: str | None = None
            self.prefs: dict[str, str] = {}

        @initialize()
        def empty(self) -> None:
            for sql in RESET_SQL:
                run(db._execute(sql, db.namespace))

        def _missing(self, name: str, call) -> bool:
            if name in self.model:
                return False
            with pytest.raises(NotFoundError):
                run(call())
            return True

        @rule(name=NAMES, desc=DESCS)
        def create(self, name, desc):
            spec = {"name": name, "display_name": name.upper(), "system_prompt": "hi", "description": desc}
            if name in self.model:
                with pytest.raises(ConflictError):
                    run(db.persona_create(spec))
                return
            got = run(db.persona_create(spec))
            assert got.version == 1 and got.is_active and not got.is_default
            self.model[name] = P(desc, history={1: desc})

        @rule(name=NAMES, desc=DESCS)
        def update(self, name, desc):
            if self._missing(name, lambda: db.persona_update(name, {"description": desc})):
                return
            p = self.model[name]
            got = run(db.persona_update(name, {"description": desc}))
            if desc != p.desc:
                p.version += 1
                p.desc = desc
                p.history[p.version] = desc
            assert (got.version, got.description) == (p.version, p.desc)

        @rule(name=NAMES, version=s.integers(1, 5))
        def rollback(self, name, version):
            if self._missing(name, lambda: db.persona_rollback(name, version)):
                return
            p = self.model[name]
            if version not in p.history:
                with pytest.raises(NotFoundError):
                    run(db.persona_rollback(name, version))
                return
            got = run(db.persona_rollback(name, version))
            p.version += 1
            p.desc = p.history[version]
            p.history[p.version] = p.desc
            assert (got.version, got.description) == (p.version, p.desc)

        @rule(name=NAMES)
        def delete(self, name):
            if self._missing(name, lambda: db.persona_delete(name)):
                return
            p = self.model[name]
            if p.active and self.default == name:
                with pytest.raises(ConflictError):
                    run(db.persona_delete(name))
                return
            got = run(db.persona_delete(name))
            p.active = False
            assert not got.is_active

        @rule(name=NAMES)
        def restore(self, name):
            if self._missing(name, lambda: db.persona_restore(name)):
                return
            assert run(db.persona_restore(name)).is_active
            self.model[name].active = True

        @rule(name=NAMES)
        def purge(self, name):
            if self._missing(name, lambda: db.persona_purge(name)):
                return
            if self.default == name:
                with pytest.raises(ConflictError):
                    run(db.persona_purge(name))
                return
            run(db.persona_purge(name))
            del self.model[name]
            self.prefs = {u: n for u, n in self.prefs.items() if n != name}

        @rule(name=NAMES)
        def set_default(self, name):
            if self._missing(name, lambda: db.persona_set_default(name)):
                return
            if self.default != name and not self.model[name].active:
                with pytest.raises(ConflictError):
                    run(db.persona_set_default(name))
                return
            assert run(db.persona_set_default(name)).is_default
            self.default = name

        @rule(user=USERS, name=s.one_of(s.none(), NAMES))
        def prefer(self, user, name):
            if name is not None and (name not in self.model or not self.model[name].active):
                with pytest.raises(NotFoundError):
                    run(db.persona_set_user_preference(user, name))
                return
            run(db.persona_set_user_preference(user, name))
            if name is None:
                self.prefs.pop(user, None)
            else:
                self.prefs[user] = name

        @rule(user=USERS)
        def for_user(self, user):
            got = run(db.persona_get_for_user(user))
            name = self.prefs.get(user)
            if name is None or not self.model[name].active:
                name = self.default
            assert (got.name if got else None) == name

        @rule(name=NAMES, include_inactive=s.booleans())
        def get(self, name, include_inactive):
            got = run(db.persona_get(name, include_inactive=include_inactive))
            p = self.model.get(name)
            if p is None or not (p.active or include_inactive):
                assert got is None
                return
            assert got is not None
            assert (got.version, got.description, got.is_active) == (p.version, p.desc, p.active)
            assert got.is_default == (self.default == name)

        @rule(name=NAMES, version=s.integers(1, 5))
        def get_version(self, name, version):
            got = run(db.persona_get_version(name, version))
            want = self.model[name].history.get(version) if name in self.model else None
            assert (got.content()["description"] if got else None) == want

        @rule(name=NAMES)
        def history(self, name):
            if self._missing(name, lambda: db.persona_history(name)):
                return
            got = [v.version for v in run(db.persona_history(name))]
            assert got == sorted(self.model[name].history, reverse=True)

        @rule()
        def get_default(self):
            got = run(db.persona_get_default())
            assert (got.name if got else None) == self.default

        def teardown(self) -> None:
            got = {p.name for p in run(db.persona_list(include_inactive=True, limit=100))}
            assert got == set(self.model)
            assert {p.name for p in run(db.persona_list(limit=100))} == {
                n for n, p in self.model.items() if p.active
            }

    return PersonaMachine
