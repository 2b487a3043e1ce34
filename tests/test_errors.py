"""Every bad input raises a MotherError that names the thing and the expected form."""

from __future__ import annotations

import psycopg
import pytest

from mother import (
    MO_LOAD,
    MO_SAVE,
    ArgumentError,
    BadValueError,
    ConfigError,
    DbMother,
    InvalidFilterError,
    MoFilter,
    MotherBox,
    MotherSession,
    NotUniqueError,
    PrimaryKeyError,
    SessionClosedError,
    UnknownFieldError,
)
from mother.config import make_settings
from mother.database import Database
from tests.support.classes import ClsStars
from tests.support.databases import count
from tests.support.manager_classes import MStars


def test_a_value_the_driver_refuses_names_its_column(db: Database) -> None:
    with pytest.raises(BadValueError) as info, MotherSession() as session:
        ClsStars({"star_name": "Sun", "star_mass": {"kg": 2}}, MO_SAVE, session=session)
    assert str(info.value).startswith("column stars.star_mass: the database refused the value")
    assert info.value.__cause__ is not None and not isinstance(info.value.__cause__,
                                                               BadValueError)


@pytest.mark.parametrize("defer", [False, True], ids=["at-once", "deferred"])
def test_an_update_value_the_driver_refuses_names_its_column(db: Database, defer: bool) -> None:
    """Sent at once, the update raises; deferred (it rides in the insert still owed), the
    session's next round trip raises, naming the column all the same."""
    session = MotherSession(defer_writes=defer)
    sun = ClsStars({"star_name": "Sun"}, MO_SAVE, session=session)
    if defer:
        sun.update({"star_age": {"years": 1}})  # nothing sent yet
    with pytest.raises(BadValueError, match=r"^column stars\.star_age: "):
        if defer:
            session.flush()
        else:
            sun.update({"star_age": {"years": 1}})
    session.close()


def test_a_raw_parameter_the_driver_refuses_is_named(db: Database) -> None:
    ph = db.dialect.placeholder
    with MotherSession() as session, pytest.raises(BadValueError, match=r"^parameter 'mass': "):
        session.mr_query(f"SELECT * FROM stars WHERE star_mass = {ph('mass')}",
                         {"mass": {"kg": 1}})


def test_text_for_an_integer_column_names_the_column_on_postgresql(pgdb: Database) -> None:
    with pytest.raises(BadValueError) as info, MotherSession() as session:
        ClsStars({"star_name": "Sun", "star_mass": "heavy"}, MO_SAVE, session=session)
    assert str(info.value).startswith("column stars.star_mass: the database refused the value "
                                      "'heavy' (invalid input syntax for type integer")
    assert isinstance(info.value.__cause__, psycopg.errors.InvalidTextRepresentation)


def test_ov_query_names_itself_and_the_whole_statement(db: Database) -> None:
    with MotherSession() as session:
        with pytest.raises(NotUniqueError) as info:
            session.ov_query("SELECT star_id  FROM stars\n WHERE star_mass > 1")
        assert str(info.value) == ("ov_query 'SELECT star_id FROM stars WHERE star_mass > 1': "
                                   "expected exactly one row, got no row")
        ClsStars({"star_name": "Sun"}, MO_SAVE, session=session)
        with pytest.raises(NotUniqueError, match=r"^ov_query 'SELECT star_id, star_name FROM "
                           r"stars' \(columns star_id, star_name\): expected exactly one "
                           r"column, got 2 columns$"):
            session.ov_query("SELECT star_id, star_name FROM stars")
        ClsStars({"star_name": "Vega"}, MO_SAVE, session=session)
        with pytest.raises(NotUniqueError, match=r"^or_query 'SELECT \* FROM stars': expected "
                           r"exactly one row, got 2 rows$"):
            session.or_query("SELECT * FROM stars")


def test_pool_max_below_the_default_pool_min_says_what_pool_min_is() -> None:
    with pytest.raises(ConfigError) as info:
        make_settings(dsn="sqlite://", pool_max=3)
    assert str(info.value) == ("setting 'pool_max' = 3: must be >= pool_min (4, the default) "
                               "and >= 1: raise pool_max or lower pool_min")
    with pytest.raises(ConfigError, match=r"pool_min \(5\) and"):
        make_settings(dsn="sqlite://", pool_min=5, pool_max=3)


def test_a_record_class_without_table_name(db: Database) -> None:
    class NoTable(DbMother):
        pass

    with pytest.raises(ArgumentError, match="record class NoTable has no table_name: write "
                       "table_name = 'the_table'"):
        NoTable({"star_name": "x"})


def test_a_session_that_is_not_a_session(db: Database) -> None:
    with pytest.raises(ArgumentError, match=r"ClsStars\(session='default'\): session must be "
                       r"a Session \(MotherSession\(\)\) or None"):
        ClsStars({"star_name": "x"}, MO_SAVE, session="default")


def test_a_store_that_is_not_a_mapping(db: Database) -> None:
    with pytest.raises(ArgumentError, match=r"ClsStars\(store='Sun'\): the store must be a "
                       r"mapping of column names to values, not str"):
        ClsStars("Sun")


@pytest.mark.parametrize("item", ["", " ", "-"])
def test_a_blank_order_item(db: Database, item: str) -> None:
    message = f"empty order item {item!r}: use 'column', '-column' or 'column DESC'"
    with MotherSession() as session:
        with pytest.raises(InvalidFilterError) as info:
            MotherBox(ClsStars, None, MO_LOAD, order=["star_name", item], session=session)
        assert str(info.value) == message
        sun = MStars({"star_name": "Sun"}, MO_SAVE, session=session)
        with pytest.raises(InvalidFilterError) as info:
            sun.getMultiplePlanets(order=[item])  # joined: the column's table is looked up
        assert str(info.value) == message


def test_records_of_an_ended_session_refuse_changes(db: Database) -> None:
    with MotherSession("ended") as session:
        sun = ClsStars({"star_name": "Sun"}, MO_SAVE, session=session)
    calls = [lambda: sun.setField("star_age", 5), lambda: sun.setFields({"star_age": 5}),
             lambda: sun.update({"star_age": 5}), lambda: sun.delete(), lambda: sun.load(),
             lambda: sun.insert(), lambda: sun.getField("star_age", autoload=True),
             lambda: sun.mr_query("SELECT 1")]
    for call in calls:
        with pytest.raises(SessionClosedError, match=r"lives in session 'ended', which has "
                           r"ended: load the row again in an open session"):
            call()
    assert sun.getField("star_name") == "Sun"  # what it holds stays readable
    with MotherSession() as session:
        assert ClsStars({"star_name": "Sun"}, MO_LOAD, session=session).getField(
            "star_age") is None


def test_a_raw_filter_key_that_is_no_column(db: Database) -> None:
    with MotherSession() as session:
        with pytest.raises(UnknownFieldError) as info:
            session.oc_query("DELETE FROM stars", MoFilter({"no_such_column": "no_such_column"}))
        assert str(info.value) == (
            "unknown column 'no_such_column' in any table: name the table with "
            "MoFilter(..., table='t') or a 't.column' key")
        with pytest.raises(UnknownFieldError, match="unknown column 'planet_name' in table "
                           "'stars'"):
            session.oc_query("DELETE FROM stars", MoFilter({"planet_name": "x"}, "stars"))
        with pytest.raises(UnknownFieldError, match="unknown column 'nope' in table 'stars'"):
            session.mr_query("SELECT * FROM stars", MoFilter({"stars.nope": 1}))


def test_a_raw_filter_key_that_is_a_column_filters(db: Database) -> None:
    with MotherSession() as session:
        ClsStars({"star_name": "Sun"}, MO_SAVE, session=session)
        ClsStars({"star_name": "Vega"}, MO_SAVE, session=session)
        session.oc_query("DELETE FROM stars", MoFilter({"stars.star_name": "Sun"}))
        assert session.mr_query("SELECT star_name FROM stars",
                                MoFilter({"star_name": "Vega"}, "stars")) == [
            {"star_name": "Vega"}]


def test_get_with_an_incomplete_primary_key(db: Database) -> None:
    with MotherSession() as session:
        with pytest.raises(PrimaryKeyError, match=r"get\(stars, \{'star_name': 'Sun'\}\): the "
                           r"primary key needs \['star_id'\], missing \['star_id'\]"):
            session.get(ClsStars, {"star_name": "Sun"})
        with pytest.raises(PrimaryKeyError, match=r"1 value\(s\), got 2"):
            session.get(ClsStars, (1, 2))


def test_a_record_set_with_a_session_that_is_not_a_session(db: Database) -> None:
    with pytest.raises(ArgumentError, match=r"^MotherBox\(session='default'\): session must be "
                       r"a Session \(MotherSession\(\)\) or None$"):
        MotherBox(ClsStars, None, MO_LOAD, session="default")


def test_a_record_set_of_something_that_is_no_record(db: Database) -> None:
    with pytest.raises(ArgumentError, match=r"^expected a DbMother class, a record or a table "
                       r"name, not 42$"):
        MotherBox(42, None, MO_LOAD)


def test_a_value_refused_at_flush_names_its_column(pgdb: Database) -> None:
    with pytest.raises(BadValueError) as info, MotherSession() as session:
        session.persist(ClsStars({"star_name": "Sun", "star_mass": "heavy"}, session=session))
        session.flush()
    assert str(info.value).startswith("column stars.star_mass: the database refused the value "
                                      "'heavy' (invalid input syntax for type integer")
    assert isinstance(info.value.__cause__, psycopg.errors.InvalidTextRepresentation)
    assert count(pgdb, "stars") == 0
