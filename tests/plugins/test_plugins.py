"""MotherTrigger and MotherCaster."""

from __future__ import annotations

import pytest

from mother import (
    MO_AFTER,
    MO_BEFORE,
    MO_DEL,
    MO_LOAD,
    MO_NOA,
    MO_SAVE,
    MO_UP,
    DbMother,
    MotherError,
    MotherSession,
    MoWrongFields,
)
from mother.plugins import MotherCaster, MotherTrigger
from mother.plugins.triggers import TriggerError
from tests.support.databases import count


class TStars(DbMother, MotherTrigger):
    table_name = "stars"

    def __init__(self, store=None, flag=MO_NOA, session=None, fail=False):
        self.calls = getattr(self, "calls", [])
        self.fail = fail
        for flag_ in (MO_SAVE, MO_UP, MO_DEL, MO_LOAD):
            self.add_trigger(flag_, MO_BEFORE, self.before)
            self.add_trigger(flag_, MO_AFTER, self.after)
        DbMother.__init__(self, store, flag, session)

    def before(self):
        self.calls.append("before")

    def after(self):
        self.calls.append("after")
        if self.fail:
            raise RuntimeError("trigger failed")


def test_triggers_fire_for_constructor_flags_and_methods(db):
    star = TStars({"star_name": "sun"}, MO_SAVE)
    assert star.calls == ["before", "after"]
    star.update({"star_mass": 3})  # updict is kept
    star.load()
    star.delete()
    assert star.calls == ["before", "after"] * 4
    assert count(db, "stars") == 0


def test_load_keeps_its_result_and_update_its_argument(db):
    TStars({"star_name": "sun", "star_mass": 1}, MO_SAVE)
    star = TStars({"star_name": "sun"})
    assert star.load()["star_mass"] == 1
    star.update({"star_mass": 2})
    assert TStars({"star_name": "sun"}, MO_LOAD).getField("star_mass") == 2


def test_adding_the_same_trigger_twice_keeps_one_identity_map_reinit(db):
    with MotherSession() as session:
        first = TStars({"star_name": "sun"}, MO_SAVE, session=session)
        again = TStars({"star_id": first.getField("star_id")}, MO_LOAD, session=session)
        assert again is first
        assert len(first.get_triggers(MO_SAVE, MO_BEFORE)) == 1
        first.calls.clear()
        first.update({"star_mass": 1})
        assert first.calls == ["before", "after"]


def test_failing_trigger_undoes_the_action_shared_and_session(db, kind):
    with pytest.raises(RuntimeError):
        TStars({"star_name": "doomed"}, MO_SAVE, fail=True)
    assert count(db, "stars") == 0
    with MotherSession() as session:
        TStars({"star_name": "kept"}, MO_SAVE, session=session)
        with pytest.raises(RuntimeError):
            TStars({"star_name": "doomed"}, MO_SAVE, session=session, fail=True)
    assert count(db, "stars") == 1


def test_after_triggers_of_a_deferred_insert_see_its_key_and_row(db):
    """In a session that defers writes, MO_SAVE's triggers still run around it: an after
    trigger that reads the key or queries gets the row (the insert is sent first)."""
    seen = []
    with MotherSession() as session:
        star = TStars({"star_name": "sun"}, session=session)
        star.add_trigger(MO_SAVE, MO_AFTER, lambda: seen.append(
            (star.getField("star_id"), session.ov_query("SELECT COUNT(*) AS n FROM stars"))))
        star.insert()
        assert star.calls == ["before", "after"]
    assert seen == [(star.getField("star_id"), 1)]


def test_trigger_introspection_and_errors(db):
    star = TStars({"star_name": "x"})
    assert star.has_trigger(MO_SAVE)
    assert star.get_flag_triggers(MO_UP) == [star.before, star.after]
    seen = []
    star.add_trigger(MO_SAVE, MO_AFTER, lambda: None)
    star.trigger(MO_SAVE, MO_BEFORE)
    assert star.calls == ["before"]
    star.initTriggers()
    assert not star.has_trigger(MO_SAVE)
    star.insert()
    assert star.calls == ["before"] and seen == []
    with pytest.raises(TriggerError):
        star.add_trigger(MO_NOA, MO_BEFORE, star.before)
    with pytest.raises(TriggerError):
        star.add_trigger(MO_SAVE, 7, star.before)
    with pytest.raises(TriggerError):
        star.add_trigger(MO_SAVE, MO_BEFORE, "not callable")
    assert issubclass(TriggerError, MotherError)


def test_override_calling_super_fires_once(db):
    class Stars(TStars):
        def insert(self):
            super().insert()

    star = Stars({"star_name": "x"}, MO_SAVE)
    assert star.calls == ["before", "after"]


class CStars(DbMother, MotherCaster):
    table_name = "stars"
    cast_fields = {"star_name": str, "star_age": int, "star_mass": int}
    required_fields = ["star_name"]


def test_caster_drops_unknown_and_casts(db):
    star = CStars({"star_name": 19, "star_age": "12", "junk": 1})
    assert star.getFields() == {"star_name": "19", "star_age": 12}
    saved = CStars({"star_name": "sun", "star_mass": "7"}, MO_SAVE)
    assert CStars({"star_name": "sun"}, MO_LOAD).getField("star_mass") == 7
    with pytest.raises(MoWrongFields):  # as in Mother: required fields are checked on creation
        CStars({"star_id": saved.getField("star_id")}, MO_LOAD)


def test_caster_reports_wrong_and_missing_fields(db):
    with pytest.raises(MoWrongFields) as info:
        CStars({"star_age": "old", "star_mass": "3"}, MO_SAVE)
    assert info.value.ifields == ["star_age"]
    assert info.value.mfields == ["star_name"]
    assert isinstance(info.value, MotherError)
    assert count(db, "stars") == 0


def test_caster_without_autocast(db):
    class Strict(CStars):
        def __init__(self, store=None, flag=MO_NOA, session=None):
            MotherCaster.__init__(self, autocast=False)
            DbMother.__init__(self, store, flag, session)

    with pytest.raises(MoWrongFields) as info:
        Strict({"star_name": "sun", "star_age": "12"})
    assert info.value.ifields == ["star_age"] and info.value.mfields == []
    assert Strict({"star_name": "sun", "star_age": 12}).getField("star_age") == 12
    assert CStars.autocast is True


def test_caster_and_trigger_together(db):
    class Both(DbMother, MotherCaster, MotherTrigger):
        table_name = "stars"
        cast_fields = {"star_mass": int}

        def __init__(self, store=None, flag=MO_NOA, session=None):
            self.seen = []
            self.add_trigger(MO_SAVE, MO_AFTER, self.note)
            DbMother.__init__(self, store, flag, session)

        def note(self):
            self.seen.append(self.getField("star_mass"))

    assert Both({"star_mass": "4", "x": 1}, MO_SAVE).seen == [4]
