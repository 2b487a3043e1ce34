"""Property-based: no identifier or value given to a public entry point can destroy data.

Every example runs one call with a hostile name or value in its own session and
commits whatever the call left; the call must either work or raise a
:class:`~mother.MotherError` or a driver error (nothing else), and the canary
table's rows, which no legitimate call of the example can match, must all be
there unchanged afterwards (inserts may add rows). The issue 14 bug: on SQLite
a MoFilter key that was no column became a string literal and
``DELETE FROM canary`` emptied the table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mother import (
    MO_DEL,
    MO_LOAD,
    MO_NOA,
    MO_SAVE,
    MO_UP,
    BadValueError,
    DbMother,
    MoFilter,
    MotherBox,
    MotherError,
    MotherFusion,
    MotherMany,
    MotherSession,
    Session,
    close_all,
    getMotherBuilder,
    getMotherObj,
    init_mother,
    tutorial,
)
from mother.database import Database
from mother.tm import join
from tests.support.classes import ClsPlanets, ClsStars
from tests.support.databases import count
from tests.support.hostile import EVIL
from tests.support.manager_classes import MPlanets, MStars

DRIVER_ERRORS = (psycopg.Error, sqlite3.Error)
CANARY = [(900001, "canary-5f1c0a9e"), (900002, "canary-b27d4e13"), (900003, "canary-0e8a6c77")]
#: columns of the tutorial schema and of the canary, and names around them
KNOWN = ["word", "canary_id", "star_id", "star_name", "star_mass", "planet_name", "stars",
         "canary", "canary.word", "stars.star_name", "planets.star_id", "-word", "word DESC",
         "star_name ASC", "-", " ", "", "*", "1", "word = word", "canary.*"]
NAMES = st.one_of(st.sampled_from(KNOWN + EVIL), st.text(max_size=24))
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True), st.text(max_size=24), st.sampled_from(EVIL + KNOWN),
    st.binary(max_size=8), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1))
#: a name and a value, often the same text: ``"x" = 'x'`` is true where a quoted name
#: becomes a string literal
PAIRS = NAMES.flatmap(lambda name: st.tuples(st.just(name), st.one_of(st.just(name), VALUES)))
#: the same examples on every run (CI stays reproducible), about a second per test
PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


class ClsCanary(DbMother):
    table_name = "canary"


@pytest.fixture
def db(dsn: str) -> Iterator[Database]:
    """The tutorial tables, without server-side prepared statements. With them, on
    PostgreSQL, a pgwire statement fails with 'prepared statement "_mo_2" does not
    exist' (a separate issue): once psycopg has prepared statements of its own on a
    connection (the schema queries) and then sees a ROLLBACK or DROP there, it sends
    DEALLOCATE ALL before its next query, which drops pgwire's statements too."""
    database = init_mother(dsn=dsn, pool_min=1, pool_max=10, pool_timeout=5,
                           prepare_threshold=None)
    tutorial.create(database)
    yield database
    close_all()


@pytest.fixture
def canary(db: Database) -> Iterator[Callable[[Callable[[Session], Any]], None]]:
    """Makes the canary table; yields ``attempt(call)``, which runs ``call(session)``,
    commits, and checks that the canary and every table survived."""
    quote, ph = db.dialect.quote, db.dialect.placeholder
    with MotherSession() as session:
        session.oc_query(f"DROP TABLE IF EXISTS {quote('canary')}")
        session.oc_query(f"CREATE TABLE {quote('canary')} ({quote('canary_id')} INTEGER "
                         f"PRIMARY KEY, {quote('word')} TEXT NOT NULL)")
    db.refresh_schema()
    with MotherSession() as session:
        sun = MStars({"star_name": "Sun"}, MO_SAVE, session=session)
        MPlanets({"star_id": sun.getField("star_id"), "planet_name": "Earth"}, MO_SAVE,
                 session=session)
    tables = set(db.schema.tables)

    def reset() -> None:  # each example starts from the canary's rows (and shrinks honestly)
        with MotherSession() as session:
            session.oc_query("DELETE FROM canary")
            session.mq_query(f"INSERT INTO canary (canary_id, word) VALUES ({ph('i')}, "
                             f"{ph('w')})", [{"i": i, "w": w} for i, w in CANARY])

    def attempt(call: Callable[[Session], Any]) -> None:
        reset()
        session = MotherSession()
        try:
            call(session)
        except (MotherError, *DRIVER_ERRORS):
            pass  # refused: fine, as long as nothing was destroyed
        try:
            session.endSession()  # commit whatever the call left behind
        except (MotherError, *DRIVER_ERRORS):
            pass
        conn = db.dialect.connect()
        try:
            rows = db.dialect.execute(conn, "SELECT canary_id, word FROM canary "
                                      "ORDER BY canary_id").fetchall()
        finally:
            conn.close()
        assert set(CANARY) <= {(row["canary_id"], row["word"]) for row in rows}
        assert set(db.refresh_schema().tables) == tables

    yield attempt


@PROPERTY
@given(pair=PAIRS)
def test_table_names(canary, pair: tuple[Any, Any]) -> None:
    name, value = pair
    class Hostile(DbMother):
        table_name = name

    canary(lambda s: Hostile({"word": value}, MO_SAVE, session=s))
    canary(lambda s: getMotherObj(name, {"word": value}, MO_DEL, s))
    canary(lambda s: s.get(name, value))
    canary(lambda s: MotherBox(name, {"word": value}, MO_LOAD, session=s))


@PROPERTY
@given(pair=PAIRS, flag=st.sampled_from([MO_NOA, MO_SAVE, MO_LOAD, MO_UP, MO_DEL]))
def test_store_keys_and_values(canary, pair: tuple[Any, Any], flag: int) -> None:
    name, value = pair
    canary(lambda s: ClsCanary({name: value}, flag, session=s))
    canary(lambda s: ClsCanary({"word": value}, MO_DEL, session=s))
    canary(lambda s: ClsStars({name: value, "star_name": "x"}, flag, session=s))


@PROPERTY
@given(pair=PAIRS)
def test_record_methods(canary, pair: tuple[Any, Any]) -> None:
    name, value = pair
    def change(s: Session) -> None:
        sun = ClsStars({"star_name": "Sun"}, MO_LOAD, session=s)
        sun.setField(name, value)

    canary(change)
    canary(lambda s: ClsStars({"star_name": "Sun"}, MO_LOAD, session=s).update({name: value}))
    canary(lambda s: ClsStars({"star_name": "Sun"}, session=s).load([name]))
    canary(lambda s: ClsStars({"star_name": "Sun"}, session=s).getFields([name], True))
    canary(lambda s: ClsStars({"star_name": "Sun"}, session=s).getField(name, True))
    canary(lambda s: ClsStars({"star_name": "Sun"}, session=s).setFields({name: value}))


@PROPERTY
@given(pair=PAIRS, order=NAMES)
def test_filters_fields_and_order(canary, pair: tuple[Any, Any], order: Any) -> None:
    name, value = pair
    canary(lambda s: ClsCanary.load_rows(s, {name: value}))
    canary(lambda s: ClsCanary.load_rows(s, {}, fields=[name]))
    canary(lambda s: ClsCanary.load_rows(s, {}, order=[order]))
    canary(lambda s: ClsCanary.load_rows(s, MoFilter({name: value}, table="canary")))
    canary(lambda s: MotherBox(ClsCanary, {name: value}, MO_LOAD, [order], [order], s))


@PROPERTY
@given(pair=PAIRS, table=st.one_of(st.none(), NAMES))
def test_raw_query_filters(canary, pair: tuple[Any, Any], table: Any) -> None:
    name, value = pair
    """The issue 14 bug: MoFilter keys of a raw query reach the SQL."""
    canary(lambda s: s.oc_query("DELETE FROM canary", MoFilter({name: value}, table)))
    canary(lambda s: s.oc_query("DELETE FROM canary WHERE canary_id > 0",
                                MoFilter({name: value}, table)))
    canary(lambda s: s.mr_query("SELECT * FROM canary", MoFilter({name: value}, table)))
    canary(lambda s: s.ov_query("SELECT word FROM canary", MoFilter({name: value}, table)))


@PROPERTY
@given(value=VALUES)
def test_raw_query_values(db: Database, canary, value: Any) -> None:
    ph = db.dialect.placeholder
    canary(lambda s: s.oc_query(f"DELETE FROM canary WHERE word = {ph('v')}", {"v": value}))
    canary(lambda s: s.mq_query(f"DELETE FROM canary WHERE word = {ph('v')}", [{"v": value}]))
    canary(lambda s: s.or_query(f"SELECT * FROM canary WHERE word = {ph('v')}", {"v": value}))


@PROPERTY
@given(pair=PAIRS, flag=st.sampled_from([MO_SAVE, MO_LOAD, MO_UP, MO_DEL]))
def test_record_sets(canary, pair: tuple[Any, Any], flag: int) -> None:
    name, value = pair
    canary(lambda s: MotherMany(ClsCanary, [{name: value}], flag, s))
    canary(lambda s: MotherMany(ClsCanary, [{"word": value}], flag, s, fields=[name]))
    canary(lambda s: MotherFusion(ClsStars, ClsPlanets, {name: value}, [name], [name], s,
                                  side=name))


@PROPERTY
@given(pair=PAIRS)
def test_children(canary, pair: tuple[Any, Any]) -> None:
    name, value = pair
    def children(s: Session) -> None:
        sun = MStars({"star_name": "Sun"}, MO_LOAD, session=s)
        sun.getMultiplePlanets([name], {name: value}, order=[name])

    def delete(s: Session) -> None:
        MStars({"star_name": "Sun"}, MO_LOAD, session=s).deleteMultiplePlanets({name: value})

    canary(children)
    canary(delete)


@PROPERTY
@given(pair=PAIRS, flag=st.sampled_from([MO_NOA, MO_SAVE, MO_LOAD, MO_DEL]))
def test_relations_and_many_children(canary, pair: tuple[Any, Any], flag: int) -> None:
    name, value = pair

    def earth(s: Session) -> MPlanets:
        return MPlanets({"planet_name": "Earth"}, MO_LOAD, session=s)

    canary(lambda s: earth(s).joinLifeforms([name], {name: value}, {name: value}, [name]))
    canary(lambda s: earth(s).joinLifeforms(r_tbl=name))
    canary(lambda s: earth(s).assignLifeforms({name: value}, flag, {name: value}))
    canary(lambda s: earth(s).dropMultipleLifeforms({name: value}, {name: value}, flag))
    canary(lambda s: MStars({"star_name": "Sun"}, MO_LOAD, session=s).insertManyPlanets(
        [{name: value}]))


@PROPERTY
@given(name=NAMES)
def test_session_names_and_builders(canary, name: Any) -> None:
    def named(_: Session) -> None:
        with MotherSession(name if isinstance(name, str) else None) as s:
            s.mr_query("SELECT word FROM canary")

    canary(named)
    canary(lambda s: MotherSession(database=name))
    canary(lambda s: getMotherBuilder(name))


#: values the database refuses that name none of themselves in its message: (column,
#: value, the kinds that refuse it). psycopg refuses text with a NUL before sending it;
#: PostgreSQL says only "integer out of range" (22003); sqlite3 cannot bind an int
#: beyond 64 bits (OverflowError)
UNTOLD = {
    "nul": ("star_name", "a\x00b", ("postgresql",)),
    "int-2**40": ("star_mass", 2**40, ("postgresql",)),
    "int-2**70": ("star_mass", 2**70, ("postgresql", "sqlite")),
}


def _untold(kind: str, case: str) -> tuple[str, Any]:
    column, value, kinds = UNTOLD[case]
    if kind not in kinds:
        pytest.skip(f"{kind} stores {value!r}")
    return column, value


def _refused(db: Database, kind: str, info: pytest.ExceptionInfo[BadValueError],
             column: str) -> None:
    """The error names the column, keeps the driver's as its cause; nothing was stored."""
    error = info.value
    assert error.what == f"column stars.{column}", str(error)
    assert isinstance(error, ValueError) and isinstance(error, MotherError)
    cause = error.__cause__
    assert cause is not None and not isinstance(cause, MotherError)
    assert isinstance(cause, psycopg.DataError if kind == "postgresql" else OverflowError)
    assert count(db, "stars") == 0


@pytest.mark.parametrize("case", list(UNTOLD))
def test_an_untold_value_sent_at_once_names_its_column(db: Database, kind: str,
                                                       case: str) -> None:
    column, value = _untold(kind, case)
    session = MotherSession(defer_writes=False)
    ClsStars({"star_name": "good"}, MO_SAVE, session=session)
    with pytest.raises(BadValueError) as info:
        ClsStars({"star_name": "bad", column: value}, MO_SAVE, session=session)
    session.close()
    _refused(db, kind, info, column)


@pytest.mark.parametrize("case", list(UNTOLD))
def test_an_untold_value_of_a_deferred_save_names_its_column(db: Database, kind: str,
                                                             case: str) -> None:
    """MO_SAVE in a session that defers writes: the write owed rides with the commit."""
    column, value = _untold(kind, case)
    session = MotherSession()
    ClsStars({"star_name": "good"}, MO_SAVE, session=session)
    ClsStars({"star_name": "bad", column: value}, MO_SAVE, session=session)  # nothing sent
    with pytest.raises(BadValueError) as info:
        session.endSession()
    if not session.closed:
        session.close()
    _refused(db, kind, info, column)


@pytest.mark.parametrize("case", list(UNTOLD))
def test_an_untold_value_at_flush_names_its_column(db: Database, kind: str, case: str) -> None:
    column, value = _untold(kind, case)
    session = MotherSession()
    session.persist(ClsStars({"star_name": "good"}, session=session))
    session.persist(ClsStars({"star_name": "bad", column: value}, session=session))
    with pytest.raises(BadValueError) as info:
        session.flush()
    session.close()
    _refused(db, kind, info, column)


@pytest.mark.usefixtures("clean_transaction")
@pytest.mark.parametrize("case", list(UNTOLD))
def test_an_untold_value_at_transaction_commit_names_its_column(db: Database, kind: str,
                                                                case: str) -> None:
    column, value = _untold(kind, case)
    session = MotherSession()
    join(session)
    ClsStars({"star_name": "good"}, MO_SAVE, session=session)
    ClsStars({"star_name": "bad", column: value}, MO_SAVE, session=session)
    with pytest.raises(BadValueError) as info:
        transaction.commit()
    transaction.abort()
    _refused(db, kind, info, column)


@pytest.mark.usefixtures("clean_transaction")
@pytest.mark.parametrize("case", ["nul", "int-2**40"])
def test_an_untold_value_at_a_two_phase_commit_names_its_column(pg_dsns: list[str],
                                                                case: str) -> None:
    """Two databases: the refused value is the second's; neither stores anything."""
    column, value, _ = UNTOLD[case]
    first = init_mother(dsn=pg_dsns[0], recover_interval=None, prepare_threshold=None)
    second = init_mother(dsn=pg_dsns[1], name="second", recover_interval=None,
                         prepare_threshold=None)
    try:
        tutorial.create(first)
        tutorial.create(second)
        one, two = MotherSession(), MotherSession(database="second")
        join(one)
        join(two)
        ClsStars({"star_name": "good"}, MO_SAVE, session=one)
        ClsStars({"star_name": "good"}, MO_SAVE, session=two)
        ClsStars({"star_name": "bad", column: value}, MO_SAVE, session=two)
        with pytest.raises(BadValueError) as info:
            transaction.commit()
        transaction.abort()
        assert info.value.what == f"column stars.{column}"
        assert isinstance(info.value.__cause__, psycopg.DataError)
        assert count(first, "stars") == 0 and count(second, "stars") == 0
    finally:
        close_all()


@pytest.mark.usefixtures("clean_transaction")
def test_an_int_too_large_for_a_dirty_update_names_its_column(pgdb: Database) -> None:
    with MotherSession() as session:
        sun = ClsStars({"star_name": "Sun", "star_mass": 1}, MO_SAVE, session=session)
        key = sun.getField("star_id")
    session = MotherSession()
    join(session)
    ClsStars({"star_id": key}, MO_LOAD, session=session).setField("star_mass", 2**40)
    with pytest.raises(BadValueError, match=r"^column stars\.star_mass: .* \(integer out of "
                       r"range\)$"):
        transaction.commit()
    transaction.abort()
    assert count(pgdb, "stars", "WHERE star_mass = 1") == 1
