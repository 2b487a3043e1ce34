"""The SQL composer, seen from the outside: tables and columns with odd but legal names work
through records, sets and relation helpers (every identifier quoted by the dialect), and
names that are not in the schema never reach the database."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator

import psycopg
import pytest

import mother
from mother import (
    MO_DEL,
    MO_LOAD,
    MO_SAVE,
    MO_UP,
    DbMother,
    MotherBox,
    MotherFusion,
    MotherManager,
    MotherMany,
    MotherSession,
    UnknownFieldError,
    UnknownTableError,
    events,
)
from mother.filters import Compare, InvalidFilterError
from tests.support.databases import count, run_ddl

# legal names that break any statement written by string formatting
PARENT = 'odd "stars"; DROP TABLE stars; --'
CHILD = "it's `planets` 100%"
OTHER = "select"
LINK = "link %(x)s :y"
P_ID, P_NAME, P_PCT = 'id "key"', "name; --", "50% :off"
C_ID, C_PARENT, C_NAME = "child id", "parent's id", "%s"
O_ID, O_NAME = "WHERE", "order"
L_P, L_O, L_NOTE = "l:p", "l`o", "note%%"


@pytest.fixture
def odd(db: mother.Database) -> Iterator[mother.Database]:
    q, serial = db.dialect.quote, db.dialect.serial_type
    script = [f"DROP TABLE IF EXISTS {q(name)}" for name in (LINK, CHILD, OTHER, PARENT)] + [
        f"CREATE TABLE {q(PARENT)} ({q(P_ID)} {serial} PRIMARY KEY, {q(P_NAME)} TEXT, "
        f"{q(P_PCT)} INTEGER)",
        f"CREATE TABLE {q(CHILD)} ({q(C_ID)} {serial} PRIMARY KEY, "
        f"{q(C_PARENT)} INTEGER REFERENCES {q(PARENT)}({q(P_ID)}), {q(C_NAME)} TEXT)",
        f"CREATE TABLE {q(OTHER)} ({q(O_ID)} {serial} PRIMARY KEY, {q(O_NAME)} TEXT)",
        f"CREATE TABLE {q(LINK)} ({q(L_P)} INTEGER REFERENCES {q(PARENT)}({q(P_ID)}), "
        f"{q(L_O)} INTEGER REFERENCES {q(OTHER)}({q(O_ID)}), {q(L_NOTE)} TEXT, "
        f"PRIMARY KEY ({q(L_P)}, {q(L_O)}))",
    ]
    conn = db.dialect.connect()
    try:
        for statement in script:  # no parameters: the text goes to the server as written
            db.dialect.begin(conn)
            db.dialect.execute(conn, statement)
        db.dialect.commit(conn)
    finally:
        conn.close()
    db.refresh_schema()
    yield db


class Parent(DbMother, MotherManager):
    table_name = PARENT


def test_records_and_sessions_with_odd_names(odd: mother.Database) -> None:
    with MotherSession() as s:
        sun = Parent({P_NAME: "sun", P_PCT: 5}, MO_SAVE, session=s)
        key = sun.getField(P_ID)
        assert s.get(Parent, key) is sun
        sun.setField(P_PCT, 6)
        s.flush()
        s.persist(Parent({P_NAME: "vega", P_PCT: 1}))
    with MotherSession() as s:
        again = s.get(Parent, key)
        assert again.getFields([P_NAME, P_PCT]) == {P_NAME: "sun", P_PCT: 6}
        again.update({P_NAME: "sol"})
        Parent({P_NAME: "vega"}, MO_LOAD, session=s).delete()
    assert count(odd, PARENT) == 1
    with MotherSession() as s:
        assert s.get(Parent, key).getField(P_NAME) == "sol"


def test_sets_with_odd_names(odd: mother.Database) -> None:
    with MotherSession() as s:
        rows = [{P_NAME: f"star {n}", P_PCT: n} for n in range(5)]
        MotherMany(PARENT, rows, MO_SAVE, session=s)
        assert all(P_ID in row for row in rows)
        box = MotherBox(PARENT, {P_PCT: 3}, MO_LOAD, fields=[P_NAME], session=s)
        assert box.getRecords() == [{P_NAME: "star 3"}]
        by_order = MotherBox(PARENT, None, MO_LOAD, fields=[P_PCT], order=[f"-{P_PCT}"],
                             session=s)
        assert [row[P_PCT] for row in by_order] == [4, 3, 2, 1, 0]
        assert MotherBox(PARENT, {P_PCT: 4}, MO_UP, fields={P_NAME: "big"},
                         session=s).rowcount == 1
        MotherMany(PARENT, [{P_ID: rows[0][P_ID], P_NAME: "first"}], MO_UP, session=s)
        loaded = MotherMany(PARENT, [{P_PCT: 0}, {P_PCT: 4}], MO_LOAD, fields=[P_NAME],
                            session=s)
        assert sorted(row[P_NAME] for row in loaded) == ["big", "first"]
        MotherMany(PARENT, [{P_PCT: 1}], MO_DEL, session=s)
        assert MotherBox(PARENT, {P_PCT: 2}, MO_DEL, session=s).rowcount == 1
    assert count(odd, PARENT) == 3


def test_children_and_relations_with_odd_names(odd: mother.Database) -> None:
    with MotherSession() as s:
        sun = Parent({P_NAME: "sun", P_PCT: 1}, MO_SAVE, session=s)
        sun.insertChild(CHILD, {C_NAME: "earth"})
        sun.insertChild(CHILD, {C_NAME: "mars"})
        assert sorted(r[C_NAME] for r in sun.getChildren(CHILD, [C_NAME])) == [
            "earth", "mars"]
        assert sun.updateChildren(CHILD, {C_NAME: "red"}, {C_NAME: "mars"}) == 1
        fused = MotherFusion(PARENT, CHILD, {C_NAME: "red"}, fields=[P_NAME, C_NAME],
                             session=s)
        assert fused.getRecords() == [{P_NAME: "sun", C_NAME: "red"}]
        linked = sun.assignRelation(OTHER, {O_NAME: "first"}, MO_SAVE, {L_NOTE: "50%"})
        assert linked.getField(O_NAME) == "first"
        joined = sun.joinRelated(OTHER)
        assert [row[O_NAME] for row in joined] == ["first"]
        through = MotherFusion(PARENT, OTHER, None, fields=([P_NAME], [O_NAME], [L_NOTE]),
                               session=s)
        assert through.getRecords() == [{P_NAME: "sun", O_NAME: "first", L_NOTE: "50%"}]
        assert sun.deleteChildren(CHILD, {C_NAME: "earth"}) == 1
        sun.dropRelations(OTHER)
    assert count(odd, CHILD) == 1
    assert count(odd, LINK) == 0
    assert count(odd, OTHER) == 1


HOSTILE = ['x"; DROP TABLE stars; --', "x` FROM stars; --", "x' OR '1'='1", "%(x)s", ":x",
           f"{PARENT}.nope", "stars.star_name"]


@pytest.fixture
def sql_seen(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="mother.sql")
    return lambda: [r for r in caplog.records if r.name == "mother.sql"]


@pytest.mark.parametrize("evil", HOSTILE)
def test_names_not_in_the_schema_never_reach_the_database(odd: mother.Database, evil: str,
                                                          sql_seen) -> None:
    with MotherSession() as s:
        sun = Parent({P_NAME: "sun"}, MO_SAVE, session=s)
        s.flush()
        before = len(sql_seen())
        attempts = [
            lambda: MotherBox(PARENT, {evil: 1}, MO_LOAD, session=s),
            lambda: MotherBox(PARENT, None, MO_LOAD, fields=[evil], session=s),
            lambda: MotherBox(PARENT, None, MO_LOAD, order=[evil], session=s),
            lambda: MotherBox(PARENT, {P_NAME: "sun"}, MO_UP, fields={evil: 1}, session=s),
            lambda: MotherBox(PARENT, {evil: 1}, MO_DEL, session=s),
            lambda: MotherMany(PARENT, [{evil: 1}], MO_SAVE, session=s),
            lambda: MotherFusion(PARENT, CHILD, {evil: 1}, session=s),
            lambda: MotherFusion(PARENT, CHILD, None, fields=[evil], session=s),
            lambda: sun.getChildren(CHILD, None, {evil: 1}),
            lambda: sun.updateChildren(CHILD, {evil: 1}),
            lambda: sun.deleteChildren(CHILD, {evil: 1}),
            lambda: sun.joinRelated(OTHER, None, None, {evil: 1}),
            lambda: MotherBox(evil, None, MO_LOAD, session=s),
        ]
        for attempt in attempts:
            with pytest.raises((UnknownFieldError, UnknownTableError, InvalidFilterError)):
                attempt()
        assert len(sql_seen()) == before
    assert count(odd, "stars") == 0  # the tutorial table is still there


def test_compare_conditions_are_bound(odd: mother.Database) -> None:
    with MotherSession() as s:
        MotherMany(PARENT, [{P_NAME: name, P_PCT: n} for n, name in
                            enumerate(["a", "b'", "%(c)s", ":d"])], MO_SAVE, session=s)
        picked = MotherBox(PARENT, {P_NAME: Compare("in", ["b'", ":d", "' OR 1=1 --"])},
                           MO_LOAD, fields=[P_PCT], order=P_PCT, session=s)
        assert [row[P_PCT] for row in picked] == [1, 3]
        rest = MotherBox(PARENT, {P_PCT: Compare(">=", 2), P_NAME: Compare("<>", ":d")},
                         MO_LOAD, fields=[P_NAME], session=s)
        assert rest.getRecords() == [{P_NAME: "%(c)s"}]
        assert len(MotherBox(PARENT, {P_NAME: Compare("in", [])}, MO_LOAD, session=s)) == 0
        assert len(MotherBox(PARENT, {P_NAME: Compare("not in", [])}, MO_LOAD,
                             session=s)) == 4
    with pytest.raises(InvalidFilterError, match="operator"):
        Compare("; DROP TABLE stars", 1)


class Star(DbMother):
    table_name = "stars"


def test_loads_of_one_shape_share_their_text_and_bind_their_values(db: mother.Database) -> None:
    with MotherSession() as s:
        s.oc_query("INSERT INTO stars (star_id, star_name) VALUES (1, 'Sun'), (2, 'Vega')")
    with MotherSession() as s, events.capture() as trace:
        assert Star({"star_id": 1}, MO_LOAD, session=s).getField("star_name") == "Sun"
        assert Star({"star_id": 2}, MO_LOAD, session=s).getField("star_name") == "Vega"
        # a None compares with IS NULL: another statement, composed for it
        assert Star({"star_name": "Vega", "star_mass": None}, MO_LOAD, session=s).getField(
            "star_id") == 2
    selects = [statement for event in trace.events if isinstance(event, events.RoundTrip)
               for statement in event.statements if statement.sql.startswith("SELECT")]
    assert len(selects) == 3
    assert selects[0].sql == selects[1].sql and "Sun" not in selects[0].sql
    assert [list(selects[0].params.values()), list(selects[1].params.values())] == [[1], [2]]
    assert "IS NULL" in selects[2].sql


def test_a_load_after_the_schema_is_read_again_selects_its_columns(db: mother.Database) -> None:
    with MotherSession() as s:
        s.oc_query("INSERT INTO stars (star_id, star_name) VALUES (1, 'Sun')")
        assert "star_colour" not in Star({"star_id": 1}, MO_LOAD, session=s).getFields()
    run_ddl(db, "ALTER TABLE stars ADD COLUMN star_colour TEXT")
    db.refresh_schema()
    with MotherSession() as s:
        s.oc_query("UPDATE stars SET star_colour = 'yellow' WHERE star_id = 1")
        assert Star({"star_id": 1}, MO_LOAD, session=s).getFields()["star_colour"] == "yellow"
    run_ddl(db, "ALTER TABLE stars DROP COLUMN star_colour")
    db.refresh_schema()
    with MotherSession() as s:
        assert Star({"star_id": 1}, MO_LOAD, session=s).getFields() == {
            "star_id": 1, "star_name": "Sun", "star_age": None, "star_mass": None}


class _DataError(Exception):
    """A driver's data error (SQLSTATE class 22) whose message shows no value."""

    def __init__(self, message: str, sqlstate: str = "22003") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def test_a_data_error_names_the_only_value_it_can_be_about(pgdb: mother.Database) -> None:
    """No schema knows table ``t``: an int beyond int4 is the one "integer out of range"
    can be about; several are not told apart, and a raw query's are left alone."""
    rejected = functools.partial(mother.sql.rejected, dialect=pgdb.dialect)
    error = _DataError("integer out of range")
    named = rejected(error, {"a": 1, "b": 2**40, "c": "x", "d": None}, "t")
    assert named is not None and named.what == "column t.b" and named.value == 2**40
    both = rejected(error, {"a": 2**40, "b": -(2**31) - 1}, "t")
    assert both is not None and both.what == "table t (the column could not be told: one of a, b)"
    assert rejected(error, {"a": 1, "b": 2**31 - 1}, "t") is None  # none can be it
    assert rejected(error, {"p": 2**40}) is None  # a parameter: not proven
    assert rejected(_DataError("smallint out of range"), {"a": 40000, "b": 2}, "t").what == (
        "column t.a")
    assert rejected(_DataError("division by zero", "22012"), {"a": 1}, "t").what == (
        "table t (the column could not be told: one of a)")
    assert rejected(_DataError("integer out of range", "23505"), {"a": 2**40}, "t") is None


def test_a_value_the_driver_cannot_send_is_proven(db: mother.Database) -> None:
    """Each driver's own refusals (psycopg's of NUL text, sqlite3's of an int beyond 64
    bits), told by that database's dialect."""
    rejected = functools.partial(mother.sql.rejected, dialect=db.dialect)
    if db.dialect.name == "postgresql":
        nul = psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        assert rejected(nul, {"a": "ok", "b": "a\x00b"}, "t").what == "column t.b"
        assert rejected(nul, {"q": "a\x00b"}).what == "parameter 'q'"
        assert rejected(psycopg.DataError("date too large"), {"a": 1}, "t") is None
    else:
        big = OverflowError("Python int too large to convert to SQLite INTEGER")
        assert rejected(big, {"a": 2**40, "b": 2**64}, "t").what == "column t.b"


def test_the_schema_s_types_tell_which_record_overflows(pgdb: mother.Database) -> None:
    """Two rows flushed together, each with an int beyond int4: the bigint's fits, so the
    integer column's is the one refused; the two are told apart in one row as well."""
    run_ddl(pgdb, "DROP TABLE IF EXISTS wide; CREATE TABLE wide (id SERIAL PRIMARY KEY, "
                  "big BIGINT, k INTEGER, n NUMERIC(4,2), v VARCHAR(3))")
    pgdb.refresh_schema()

    class Wide(DbMother):
        table_name = "wide"

    for rows, column in (([{"big": 2**40}, {"k": 2**40}], "k"),
                         ([{"big": 2**40, "k": 2**40}], "k"),
                         ([{"n": 1.5}, {"n": 123}], "n"),
                         ([{"v": "abcd", "k": 1}], "v")):
        session = MotherSession()
        for row in rows:
            session.persist(Wide(row, session=session))
        with pytest.raises(mother.BadValueError) as info:
            session.flush()
        session.close()
        assert info.value.what == f"column wide.{column}", str(info.value)
        assert count(pgdb, "wide") == 0


def test_a_proven_value_of_a_later_record_is_named_before_a_possible_one(
        pgdb: mother.Database) -> None:
    """A flush across two tables: the first record's value only may be the refused one (a
    domain over bigint, whose range the error does not tell), the second's is proven (an
    int beyond its ``integer`` column): the second is named."""
    run_ddl(pgdb, "DROP TABLE IF EXISTS loose; DROP TABLE IF EXISTS tight; "
                  "DROP DOMAIN IF EXISTS bigish; CREATE DOMAIN bigish AS bigint; "
                  "CREATE TABLE loose (id SERIAL PRIMARY KEY, d bigish); "
                  "CREATE TABLE tight (id SERIAL PRIMARY KEY, k INTEGER)")
    pgdb.refresh_schema()

    class Loose(DbMother):
        table_name = "loose"

    class Tight(DbMother):
        table_name = "tight"

    session = MotherSession()
    session.persist(Loose({"d": 2**40}, session=session))
    session.persist(Tight({"k": 2**40}, session=session))
    with pytest.raises(mother.BadValueError) as info:
        session.flush()
    session.close()
    assert info.value.what == "column tight.k", str(info.value)
    assert count(pgdb, "loose") == 0 and count(pgdb, "tight") == 0
