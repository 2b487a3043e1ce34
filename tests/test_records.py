"""The DbMother record API on Mother's tutorial schema."""

from __future__ import annotations

import logging

import pytest

from mother import (
    MO_DEL,
    MO_LOAD,
    MO_NOA,
    MO_SAVE,
    MO_UP,
    SQL_DEFAULT,
    SQL_FALSE,
    SQL_NULL,
    SQL_TRUE,
    DbMother,
    DeletedRecordError,
    MotherError,
    MotherFly,
    MotherSession,
    NotLoadedError,
    NotUniqueError,
    ParanoidError,
    PrimaryKeyError,
    UnknownTableError,
    getMotherBuilder,
    getMotherObj,
    init_mother,
    tutorial,
)
from mother.database import Database
from tests.support.classes import ClsCivilizations, ClsLifeforms, ClsPlanets, ClsStars
from tests.support.databases import count


class ParanoidStars(DbMother):
    table_name = "stars"
    paranoid = True


@pytest.fixture
def session(db: Database):
    s = MotherSession()
    yield s
    if not s.closed:
        s.close()


@pytest.fixture
def sql_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The SQL statements dbmother runs (the ``mother.sql`` logger)."""
    caplog.set_level(logging.DEBUG, logger="mother.sql")

    class Statements(list):
        def __iter__(self):
            return iter([r.getMessage().split(" -- parameters:")[0] for r in caplog.records
                         if r.name == "mother.sql"
                         and not r.getMessage().startswith("parameters:")])

        def __len__(self):
            return len(list(iter(self)))

    return Statements()


def test_insert_returns_the_primary_key(db: Database, session) -> None:
    sun = ClsStars({"star_name": "Sun", "star_mass": 20}, MO_SAVE, session=session)
    vega = ClsStars({"star_name": "Vega"}, MO_SAVE, session=session)
    assert isinstance(sun.getField("star_id"), int)
    assert vega.getField("star_id") != sun.getField("star_id")
    session.endSession()
    assert count(db, "stars") == 2


def test_insert_on_the_shared_connection(db: Database) -> None:
    star = ClsStars({"star_name": "Shared"}, MO_SAVE)
    assert star.session is None
    assert isinstance(star.getField("star_id"), int)
    assert count(db, "stars") == 1


def test_insert_without_primary_key_table(db: Database, session) -> None:
    sun = ClsStars({"star_name": "Sun"}, MO_SAVE, session=session)
    earth = ClsPlanets({"star_id": sun.getField("star_id"), "planet_name": "Earth"}, MO_SAVE,
                       session=session)
    life = ClsLifeforms({"life_name": "humans"}, MO_SAVE, session=session)
    civ = ClsCivilizations({"life_id": life.getField("life_id"),
                            "planet_id": earth.getField("planet_id"), "age": 3}, MO_SAVE,
                           session=session)
    assert civ.getField("age") == 3
    session.endSession()
    assert count(db, "civilizations") == 1


@pytest.mark.parametrize("defer", [True, False], ids=["deferred", "at once"])
def test_a_second_insert_does_what_a_second_insert_statement_does(
        db: Database, defer: bool) -> None:
    """Deferred or not, insert() twice sends two INSERTs: another row where the table has
    no key, and the key's violation where it has one (deferred, the second used to vanish)."""
    with MotherSession(defer_writes=defer) as s:
        sun = ClsStars({"star_name": "Sun"}, MO_SAVE, session=s)
        earth = ClsPlanets({"star_id": sun.getField("star_id"), "planet_name": "Earth"},
                           MO_SAVE, session=s)
        life = ClsLifeforms({"life_name": "humans"}, MO_SAVE, session=s)
        civ = ClsCivilizations({"life_id": life.getField("life_id"),
                                "planet_id": earth.getField("planet_id"), "age": 3},
                               MO_SAVE, session=s)
        civ.insert()
    assert count(db, "civilizations") == 2
    session = MotherSession(defer_writes=defer)
    star = ClsStars({"star_name": "Vega"}, MO_SAVE, session=session)
    with pytest.raises(Exception) as info:
        star.insert()
    assert type(info.value).__name__ in ("UniqueViolation", "IntegrityError"), info.value
    session.close()
    assert count(db, "stars") == 1


@pytest.mark.parametrize("defer", [True, False], ids=["deferred", "at once"])
def test_a_second_delete_changes_nothing_more(db: Database, defer: bool) -> None:
    """delete() twice on a loaded record: the row is deleted and the commit succeeds,
    deferred or not (deferred, the second used to fail as stale, and retries with it)."""
    with MotherSession() as s:
        sid = ClsStars({"star_name": "Sun"}, MO_SAVE, session=s).getField("star_id")
    with MotherSession(defer_writes=defer) as s:
        star = ClsStars({"star_id": sid}, MO_LOAD, session=s)
        star.delete()
        star.delete()
    assert count(db, "stars") == 0


@pytest.mark.parametrize(("how", "defer"), [("session.delete", True), ("session.delete", False),
                                            ("delete()", True)])  # at once: the row is gone
def test_an_update_of_a_record_the_session_deletes_is_refused(
        db: Database, defer: bool, how: str) -> None:
    """Deferred, it used to vanish silently; at once, to fail as if another transaction
    had deleted the row. Now both refuse at the call, nothing changed, and the delete
    goes on."""
    with MotherSession() as s:
        sid = ClsStars({"star_name": "Sun"}, MO_SAVE, session=s).getField("star_id")
    with MotherSession(defer_writes=defer) as s:
        star = ClsStars({"star_id": sid}, MO_LOAD, session=s)
        s.delete(star) if how == "session.delete" else star.delete()
        with pytest.raises(DeletedRecordError, match="deletes its row"):
            star.update({"star_name": "changed"})
        assert star.getField("star_name") == "Sun"
    assert count(db, "stars") == 0


def test_load_exactly_one(db: Database, session) -> None:
    sid = ClsStars({"star_name": "A", "star_mass": 1}, MO_SAVE, session=session).getField(
        "star_id")
    ClsStars({"star_name": "B", "star_mass": 1}, MO_SAVE, session=session)
    session.commit()
    other = MotherSession()
    try:
        loaded = ClsStars({"star_id": sid}, MO_LOAD, session=other)
        assert loaded.getFields() == {"star_id": sid, "star_name": "A", "star_age": None,
                                      "star_mass": 1}
        by_name = ClsStars({"star_name": "B"}, MO_LOAD, session=other)
        assert by_name.getField("star_mass") == 1
        with pytest.raises(NotUniqueError) as many:
            ClsStars({"star_mass": 1}, MO_LOAD, session=other)
        assert many.value.count == 2
        with pytest.raises(NotUniqueError) as none:
            ClsStars({"star_name": "nobody"}, MO_LOAD, session=other)
        assert none.value.count == 0
        with pytest.raises(PrimaryKeyError):
            ClsStars({}, MO_LOAD, session=other)
    finally:
        other.close()


def test_load_selected_fields_and_autoload(db: Database) -> None:
    sid = ClsStars({"star_name": "C", "star_age": 7}, MO_SAVE).getField("star_id")
    with MotherSession() as s:
        star = ClsStars({"star_id": sid}, session=s)
        assert star.load(["star_name"]) == {"star_id": sid, "star_name": "C"}
        with pytest.raises(NotLoadedError):
            star.getField("star_age")
        assert star.getField("star_age", autoload=True) == 7
        assert star.getFields(["star_name", "star_mass"], autoload=True) == {
            "star_name": "C", "star_mass": None}


def test_update_writes_only_changed_columns(db: Database, sql_log) -> None:
    sid = ClsStars({"star_name": "Old", "star_mass": 1}, MO_SAVE).getField("star_id")
    with MotherSession() as s:
        star = ClsStars({"star_id": sid}, MO_LOAD, session=s)
        # the row changes behind the record's back; the update must not undo that
        s.oc_query("UPDATE stars SET star_name = 'Renamed'")
        star.setField("star_mass", 99)
        star.update()
        s.flush()  # the deferred UPDATE goes out with the session's next round trip
        updates = [text for text in sql_log
                   if text.split("] ", 1)[1].startswith(f"UPDATE {db.dialect.quote('stars')}")]
        assert len(updates) == 1
        quote = db.dialect.quote
        assert quote("star_mass") in updates[0]
        assert quote("star_name") not in updates[0].split("WHERE")[0]
    with MotherSession() as s:
        row = s.or_query("SELECT star_name, star_mass FROM stars")
    assert row == {"star_name": "Renamed", "star_mass": 99}


def test_update_flag_by_primary_key(db: Database) -> None:
    sid = ClsStars({"star_name": "S", "star_mass": 1}, MO_SAVE).getField("star_id")
    ClsStars({"star_name": "T", "star_mass": 1}, MO_SAVE)
    with MotherSession() as s:
        ClsStars({"star_id": sid, "star_mass": 15}, MO_UP, session=s)
    with MotherSession() as s:
        assert s.mr_query("SELECT star_name, star_mass FROM stars ORDER BY star_name") == [
            {"star_name": "S", "star_mass": 15}, {"star_name": "T", "star_mass": 1}]


def test_update_with_updict_and_nothing_to_update(db: Database, session, sql_log) -> None:
    star = ClsStars({"star_name": "U"}, MO_SAVE, session=session)
    before = len(sql_log)
    star.update()  # nothing changed: no SQL
    assert len(sql_log) == before
    star.update({"star_age": 4})
    session.endSession()
    assert count(db, "stars", "WHERE star_age = 4") == 1


def test_update_refuses_a_primary_key_change(db: Database, session) -> None:
    star = ClsStars({"star_name": "P"}, MO_SAVE, session=session)
    with pytest.raises(PrimaryKeyError, match="star_id"):
        star.setField("star_id", 12345)
    with pytest.raises(PrimaryKeyError):
        star.update({"star_id": 12345})
    assert star.getField("star_id") != 12345


def test_delete_flag(db: Database) -> None:
    a = ClsStars({"star_name": "del", "star_mass": 5}, MO_SAVE)
    ClsStars({"star_name": "del", "star_mass": 6}, MO_SAVE)
    ClsStars({"star_name": "keep"}, MO_SAVE)
    with MotherSession() as s:
        ClsStars({"star_id": a.getField("star_id")}, MO_DEL, session=s)
    assert count(db, "stars") == 2
    with MotherSession() as s:
        ClsStars({"star_name": "del"}, MO_DEL, session=s)  # not paranoid: every match
    assert count(db, "stars") == 1


def test_noa_does_nothing(db: Database, sql_log) -> None:
    star = ClsStars({"star_name": "quiet"}, MO_NOA)
    assert star.getFields() == {"star_name": "quiet"}
    assert len(sql_log) == 0
    assert count(db, "stars") == 0


def test_unknown_flag(db: Database) -> None:
    with pytest.raises(MotherError, match="flag"):
        ClsStars({"star_name": "x"}, 42)


def test_paranoid_class_refuses_writes_without_primary_key(db: Database) -> None:
    ClsStars({"star_name": "safe"}, MO_SAVE)
    with pytest.raises(ParanoidError):
        ParanoidStars({"star_name": "safe"}, MO_DEL)
    star = ParanoidStars({"star_name": "safe"})
    star.setField("star_mass", 3)
    with pytest.raises(ParanoidError):
        star.update()
    assert count(db, "stars", "WHERE star_mass IS NULL") == 1
    # with the primary key it works
    sid = ClsStars({"star_name": "safe"}, MO_LOAD).getField("star_id")
    ParanoidStars({"star_id": sid}, MO_DEL)
    assert count(db, "stars") == 0


def test_paranoid_setting_for_the_whole_database(dsn: str) -> None:
    database = init_mother(dsn=dsn, paranoid=True)
    tutorial.create(database)
    ClsStars({"star_name": "x"}, MO_SAVE)
    with pytest.raises(ParanoidError):
        ClsStars({"star_name": "x"}, MO_DEL)
    assert count(database, "stars") == 1


def test_sql_default_and_null(db: Database, session) -> None:
    star = ClsStars({"star_id": SQL_DEFAULT, "star_name": "D", "star_mass": SQL_NULL}, MO_SAVE,
                    session=session)
    assert isinstance(star.getField("star_id"), int)
    assert session.ov_query("SELECT COUNT(*) AS n FROM stars WHERE star_mass IS NULL") == 1
    # None in a filter means IS NULL
    found = ClsStars({"star_mass": SQL_NULL, "star_name": "D"}, MO_LOAD, session=session)
    assert found.getField("star_id") == star.getField("star_id")
    star.update({"star_mass": 3})
    star.update({"star_mass": SQL_NULL})
    assert session.ov_query("SELECT star_mass FROM stars") is None


def test_sql_true_and_false(db: Database, session) -> None:
    session.oc_query("CREATE TABLE switches (switch_id "
                     f"{db.dialect.serial_type} PRIMARY KEY, lit BOOLEAN)")
    session.commit()
    db.refresh_schema()
    on = getMotherObj("switches", {"lit": SQL_TRUE}, MO_SAVE, session)
    getMotherObj("switches", {"lit": SQL_FALSE}, MO_SAVE, session)
    found = getMotherObj("switches", {"lit": SQL_TRUE}, MO_LOAD, session)
    assert found.getField("switch_id") == on.getField("switch_id")
    assert found.getField("lit") == True  # noqa: E712 - SQLite gives 1
    session.oc_query("DROP TABLE switches")
    session.endSession()


def test_mother_fly_builders(db: Database, session) -> None:
    builder = getMotherBuilder("stars")
    assert issubclass(builder, MotherFly) and builder.table_name == "stars"
    assert getMotherBuilder("stars") is builder
    one = builder({"star_name": "f1"}, MO_SAVE, session)
    two = builder({"star_name": "f2"}, MO_SAVE, session)
    assert one is not two  # a fresh record per call (Mother reused one)
    obj = getMotherObj("stars", {"star_id": one.getField("star_id")}, MO_LOAD, session)
    assert obj.getField("star_name") == "f1"
    with pytest.raises(UnknownTableError):
        getMotherBuilder("galaxies")
    with pytest.raises(UnknownTableError):
        getMotherObj("galaxies", {}, MO_NOA)


def test_str_marks_dirty_fields(db: Database) -> None:
    star = ClsStars({"star_name": "Sun"})
    text = str(star)
    assert text.splitlines()[0] == "Table |stars|"
    assert "star_name * Sun" in text and "star_age ~ Unset" in text


def test_records_in_a_session_share_it(db: Database, session) -> None:
    sun = ClsStars({"star_name": "Sun"}, MO_SAVE, session=session)
    assert sun.session is session
    assert sun.ov_query("SELECT COUNT(*) AS n FROM stars") == 1
    assert count(db, "stars") == 0  # not committed: the record ran in the session
    sun.rollback()  # ignored in a session
    session.endSession()
    assert count(db, "stars") == 1


def test_legacy_import_surface() -> None:
    namespace: dict[str, object] = {}
    exec("from mother.mothers import *", namespace)
    for name in ("DbMother", "MotherSession", "MotherFly", "getMotherBuilder", "getMotherObj",
                 "MO_NOA", "MO_SAVE", "MO_LOAD", "MO_UP", "MO_DEL", "SQL_DEFAULT", "SQL_NULL",
                 "SQL_TRUE", "SQL_FALSE", "MoFilter", "MotherPoolStatus", "MotherPoolStratus",
                 "init_mother", "MotherError"):
        assert name in namespace, name
    assert (namespace["MO_NOA"], namespace["MO_DEL"], namespace["MO_UP"], namespace["MO_SAVE"],
            namespace["MO_LOAD"]) == (0, 1, 2, 3, 4)
