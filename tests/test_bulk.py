"""Bulk writes (mother/bulk.py): inserts with keys in row order for every row, by COPY
where it can, row by row where it cannot; updates of many records as one statement where
it can; and nothing written when one row fails."""

from __future__ import annotations

import datetime
import decimal
import sqlite3
import uuid

import psycopg
import pytest

import mother
from mother import (
    MO_LOAD,
    SQL_DEFAULT,
    MotherBox,
    MotherMany,
    MotherSession,
    events,
    getMotherBuilder,
)
from mother.bulk import BULK_ROWS
from mother.records import MO_SAVE
from tests.support import pooler
from tests.support.databases import count

ROWS = BULK_ROWS * 3 + 7


def statements(trace: events.Trace) -> list[events.Statement]:
    return [s for e in trace.events if isinstance(e, events.RoundTrip) for s in e.statements]


def copies(trace: events.Trace) -> list[str]:
    """The COPY statements the trace saw (each followed by the round trip of its rows)."""
    found = statements(trace)
    started = [s.sql for s in found if s.sql.startswith("COPY") and "(its rows)" not in s.sql]
    assert [s.sql for s in found if "(its rows)" in s.sql] == [
        f"{sql} (its rows)" for sql in started]
    return started


def stars(n: int, offset: int = 0) -> list[dict[str, object]]:
    return [{"star_name": f"star {offset + i}", "star_mass": i % 13} for i in range(n)]


def check_in_order(session: MotherSession, table: str, key: str, rows: list[dict]) -> None:
    """Each row's key reads back the row itself (every column it gave)."""
    q = session.database.dialect.quote
    found = {row[key]: row for row in session.mr_query(f"SELECT * FROM {q(table)}")}
    assert len({row[key] for row in rows}) == len(rows)
    for row in rows:
        stored = found[row[key]]
        assert {name: stored[name] for name in row} == row, (row, stored)


def test_motherMany_writes_every_key_back_in_row_order(db):
    rows = stars(ROWS)
    with events.capture() as trace, MotherSession() as session:
        MotherMany("stars", rows, MO_SAVE, session)
        check_in_order(session, "stars", "star_id", rows)
    assert count(db, "stars") == ROWS
    expected = ['COPY "stars" ("star_id", "star_name", "star_mass") FROM STDIN']
    assert copies(trace) == (expected if db.dialect.can_copy else [])
    if db.dialect.can_copy:  # the keys, then the COPY, then its rows: each reported
        [keys] = [s for s in statements(trace) if "nextval" in s.sql]
        [data] = [s for s in statements(trace) if s.sql.endswith("(its rows)")]
        assert keys.rows == 1 and data.rows == ROWS


ODD_TABLE = "Odd %(t)s \"table"
ODD_KEY = "Id %s"


def make_odd_table(db: mother.Database) -> None:
    """A table with odd names, defaults and a trigger that fills a column of each row."""
    q = db.dialect.quote
    t, key, weird, mixed, note = (q(ODD_TABLE), q(ODD_KEY), q("we`ird \"col"),
                                  q("Mixed Case"), q("note"))
    with MotherSession() as s:
        s.oc_query(f"DROP TABLE IF EXISTS {t}")
        s.oc_query(f"CREATE TABLE {t} ({key} {db.dialect.serial_type} PRIMARY KEY, "
                   f"{weird} TEXT, {mixed} INTEGER DEFAULT 7, {note} TEXT)")
        if db.dialect.name == "postgresql":
            s.oc_query("CREATE OR REPLACE FUNCTION odd_note() RETURNS trigger LANGUAGE plpgsql "
                       f"AS $$ BEGIN NEW.{note} := 'row ' || coalesce(NEW.{weird}, 'null'); "
                       "RETURN NEW; END $$")
            s.oc_query(f"CREATE TRIGGER odd_note BEFORE INSERT ON {t} "
                       "FOR EACH ROW EXECUTE FUNCTION odd_note()")
        else:
            s.oc_query(f"CREATE TRIGGER odd_note AFTER INSERT ON {t} BEGIN UPDATE {t} "
                       f"SET {note} = 'row ' || coalesce(NEW.{weird}, 'null') "
                       f"WHERE {key} = NEW.{key}; END")
    db.refresh_schema()


def test_keys_in_row_order_with_odd_names_nulls_defaults_and_a_trigger(db):
    make_odd_table(db)
    weird = "we`ird \"col"
    rows = [{weird: None if i % 5 == 0 else f"w{i}%", "Mixed Case": i} for i in range(ROWS)]
    rows += [{weird: f"d{i}", "Mixed Case": SQL_DEFAULT} for i in range(ROWS)]
    with events.capture() as trace, MotherSession() as session:
        MotherMany(getMotherBuilder(ODD_TABLE), rows, MO_SAVE, session)
        assert all("Mixed Case" not in row for row in rows[ROWS:])  # DEFAULT: not sent
        # the rows name the same columns: the COPY path finds SQL_DEFAULT among their
        # values while the keys are numbered, sends nothing more; then a COPY per group
        assert len(copies(trace)) == (2 if db.dialect.can_copy else 0)
        check_in_order(session, ODD_TABLE, ODD_KEY, rows)
        q = db.dialect.quote
        stored = {row[ODD_KEY]: row for row in session.mr_query(
            f"SELECT * FROM {q(ODD_TABLE)}")}
    for row in rows:  # the trigger ran for each row, and the defaults were the database's
        got = stored[row[ODD_KEY]]
        assert got["note"] == f"row {row[weird] if row[weird] is not None else 'null'}"
        assert got["Mixed Case"] == row.get("Mixed Case", 7)


def test_rows_that_bring_their_own_keys_are_copied_as_they_are(db):
    rows = [{"star_id": 10_000 + i, "star_name": f"own {i}"} for i in range(ROWS)]
    with events.capture() as trace, MotherSession() as session:
        MotherMany("stars", rows, MO_SAVE, session)
        check_in_order(session, "stars", "star_id", rows)
    assert copies(trace) == (['COPY "stars" ("star_id", "star_name") FROM STDIN']
                             if db.dialect.can_copy else [])


def test_a_key_no_sequence_numbers_falls_back_to_one_insert_per_row(pgdb):
    with MotherSession() as s:
        s.oc_query("DROP TABLE IF EXISTS unowned")  # a run before, on another route
        s.oc_query("DROP SEQUENCE IF EXISTS free_numbers")
        s.oc_query("CREATE SEQUENCE free_numbers START 500 INCREMENT 3")
        s.oc_query("CREATE TABLE unowned (u_id BIGINT PRIMARY KEY "
                   "DEFAULT nextval('free_numbers'), label TEXT)")
    pgdb.refresh_schema()
    rows = [{"label": f"label {i}"} for i in range(ROWS)]
    with events.capture() as trace, MotherSession() as session:
        MotherMany("unowned", rows, MO_SAVE, session)
        check_in_order(session, "unowned", "u_id", rows)
    assert copies(trace) == []
    assert sorted(row["u_id"] for row in rows) == list(range(500, 500 + 3 * ROWS, 3))
    inserts = [s for e in trace.events if isinstance(e, events.RoundTrip)
               for s in e.statements if s.sql.startswith("INSERT INTO")]
    assert len(inserts) == 1 and len(inserts[0].params) == ROWS  # one per row, sent together


def test_a_few_rows_go_row_by_row_without_copy(db):
    rows = stars(BULK_ROWS - 1)
    with events.capture() as trace, MotherSession() as session:
        MotherMany("stars", rows, MO_SAVE, session)
        check_in_order(session, "stars", "star_id", rows)
    assert copies(trace) == []


def planets(db: mother.Database, n: int, bad: int) -> list[dict[str, object]]:
    """``n`` planets of a committed star; planet ``bad`` names a star that does not exist."""
    with MotherSession() as s:
        star = s.ov_query("INSERT INTO stars (star_name) VALUES ('sun') RETURNING star_id")
    rows = [{"star_id": star, "planet_name": f"planet {i}"} for i in range(n)]
    rows[bad]["star_id"] = star + 1000
    return rows


REFUSED = (psycopg.errors.ForeignKeyViolation, sqlite3.IntegrityError)


def test_a_failing_row_in_the_middle_leaves_nothing_written_in_a_session(db):
    rows = planets(db, ROWS, ROWS // 2)
    session = MotherSession()
    with pytest.raises(REFUSED, match="(?i)foreign key"):
        MotherMany("planets", rows, MO_SAVE, session)
    session.rollback()
    session.endSession()
    assert count(db, "planets") == 0
    assert not any("planet_id" in row for row in rows)  # no key written back


def test_a_failing_row_leaves_nothing_written_on_the_shared_connection(db):
    rows = planets(db, ROWS, ROWS - 1)
    with pytest.raises(REFUSED, match="(?i)foreign key"):
        MotherMany("planets", rows, MO_SAVE)
    assert count(db, "planets") == 0


def test_a_failing_keys_query_leaves_nothing_written_and_the_session_goes_on(pgdb):
    with MotherSession() as s:  # the sequence runs out half-way through the keys
        s.oc_query(f"ALTER SEQUENCE stars_star_id_seq MAXVALUE {ROWS // 2}")
    rows = stars(ROWS)
    session = MotherSession("short")
    with events.capture() as trace, pytest.raises(
            psycopg.errors.SequenceGeneratorLimitExceeded):
        MotherMany("stars", rows, MO_SAVE, session)
    assert not any("star_id" in row for row in rows)  # no key written back
    [trip] = [e for e in trace.events if isinstance(e, events.RoundTrip)]
    sent = [s.sql for s in trip.statements]  # the BEGIN rode with the keys; no COPY
    assert sent[0] == "BEGIN" and "nextval" in sent[-1] and trip.error is not None
    session.rollback()
    with MotherSession() as s:
        s.oc_query("ALTER SEQUENCE stars_star_id_seq NO MAXVALUE")
    with session:
        MotherMany("stars", stars(3), MO_SAVE, session)  # the session goes on
    assert count(pgdb, "stars") == 3


def test_rows_naming_their_columns_in_any_order_go_as_one_copy(db):
    rows = [row if i % 2 else dict(reversed(row.items())) for i, row in enumerate(stars(ROWS))]
    with events.capture() as trace, MotherSession() as session:
        MotherMany("stars", rows, MO_SAVE, session)
        check_in_order(session, "stars", "star_id", rows)
    assert len(copies(trace)) == (1 if db.dialect.can_copy else 0)


def test_bulk_insert_is_refused_in_a_read_only_session(db):
    with MotherSession(readonly=True) as session, pytest.raises(
            mother.ReadOnlySessionError, match="read-only"):
        MotherMany("stars", stars(ROWS), MO_SAVE, session)
    assert count(db, "stars") == 0


def test_a_flush_of_many_new_records_copies_them_with_their_keys(db):
    Star = getMotherBuilder("stars")
    with events.capture() as trace, MotherSession() as session:
        sun = Star({"star_name": "sun"}, session=session)
        session.persist(sun)
        session.flush()
        sun.setField("star_mass", 99)  # an update in the same flush as the big insert
        objs = [Star(row, session=session) for row in stars(ROWS)]
        for obj in objs:
            session.persist(obj)
        session.flush()
        rows = [obj.getFields() for obj in objs]
        check_in_order(session, "stars", "star_id", rows)
        assert session.ov_query("SELECT star_mass FROM stars WHERE star_name = 'sun'") == 99
        assert all(obj in session for obj in objs)
    assert count(db, "stars") == ROWS + 1
    assert len(copies(trace)) == (1 if db.dialect.can_copy else 0)


def test_a_stale_update_after_a_copied_group_names_the_right_record(db):
    Star = getMotherBuilder("stars")
    with MotherSession() as session:
        gone, kept = Star({"star_name": "gone"}, session=session), Star({}, session=session)
        session.persist(gone)
        session.persist(kept)  # a higher key stays: SQLite does not number a new row 1 again
        session.flush()
        session.oc_query("DELETE FROM stars WHERE star_name = 'gone'")
        gone.setField("star_mass", 1)
        for row in stars(ROWS):
            session.persist(Star(row, session=session))
        with pytest.raises(mother.StaleRecordError, match=f"stars row {gone.getField('star_id')}"):
            session.flush()
        session.rollback()
    assert count(db, "stars") == 0


# -- updates ------------------------------------------------------------------------------

def updates(trace: events.Trace) -> list[events.Statement]:
    """The UPDATE statements the trace saw, the group ones (``ROWS FROM``) included."""
    return [s for s in statements(trace) if "UPDATE " in s.sql]


def grouped(trace: events.Trace) -> list[events.Statement]:
    return [s for s in updates(trace) if "ROWS FROM" in s.sql]


def seeded(db: mother.Database, n: int = ROWS) -> None:
    MotherMany("stars", stars(n), MO_SAVE)


def loaded(session: MotherSession, table: str = "stars", order: str = "star_id") -> list:
    return MotherBox(table, None, MO_LOAD, order=order, session=session).getRecords(
        flag_obj=True)


@pytest.mark.parametrize("end", ["flush", "commit"])
def test_many_changed_records_go_as_one_update(db, end):
    seeded(db)
    with events.capture() as trace:
        session = MotherSession()
        for star in loaded(session):
            star.setField("star_mass", star.getField("star_mass") + 1000)
        if end == "flush":
            session.flush()
        session.endSession()
    if db.dialect.can_update_arrays:  # one statement, one parameter set: the arrays
        [group] = updates(trace)
        assert "ROWS FROM" in group.sql and group.rows == 1
    else:  # one UPDATE a row (SQLite reports each apart)
        assert grouped(trace) == [] and sum(
            len(s.params) if isinstance(s.params, list) else 1 for s in updates(trace)) == ROWS
    with MotherSession() as s:
        masses = [row["star_mass"] for row in s.mr_query("SELECT star_mass FROM stars "
                                                          "ORDER BY star_id")]
    assert masses == [1000 + i % 13 for i in range(ROWS)]


@pytest.mark.parametrize("end", ["flush", "commit"])
@pytest.mark.parametrize("where", ["first", "between", "last"])
def test_a_stale_row_in_an_update_group_is_named_and_nothing_is_written(db, end, where):
    seeded(db)
    session = MotherSession()
    records = loaded(session)
    victim = records[{"first": 0, "between": ROWS // 2, "last": ROWS - 1}[where]]
    victim_id = victim.getField("star_id")
    session.oc_query(f"DELETE FROM stars WHERE star_id = {victim_id}")
    for star in records:
        star.setField("star_mass", 5000)
    with pytest.raises(mother.StaleRecordError, match=f"stars row {victim_id}\\b"):
        session.flush() if end == "flush" else session.endSession()
    if end == "flush":
        session.rollback()
        session.endSession()
    assert session.closed  # a failed endSession() rolled back and ended it
    assert count(db, "stars") == ROWS  # the DELETE rolled back with the rest
    assert count(db, "stars", "WHERE star_mass = 5000") == 0


def test_an_update_group_runs_row_triggers_and_keeps_odd_names(db):
    make_odd_table(db)
    weird, t, note = "we`ird \"col", db.dialect.quote(ODD_TABLE), db.dialect.quote("note")
    MotherMany(getMotherBuilder(ODD_TABLE), [{weird: f"w{i}"} for i in range(ROWS)], MO_SAVE)
    if db.dialect.name == "postgresql":
        with MotherSession() as s:
            s.oc_query("CREATE OR REPLACE FUNCTION odd_touched() RETURNS trigger "
                       f"LANGUAGE plpgsql AS $$ BEGIN NEW.{note} := 'touched ' || "
                       f"NEW.{db.dialect.quote(weird)}; RETURN NEW; END $$")
            s.oc_query(f"CREATE TRIGGER odd_touched BEFORE UPDATE ON {t} "
                       "FOR EACH ROW EXECUTE FUNCTION odd_touched()")
    with events.capture() as trace, MotherSession() as session:
        for record in loaded(session, ODD_TABLE, ODD_KEY):
            record.setField(weird, record.getField(weird) + "%s")
    assert len(grouped(trace)) == (1 if db.dialect.can_update_arrays else 0)
    with MotherSession() as s:
        rows = s.mr_query(f"SELECT * FROM {t}")
    assert sorted(row[weird] for row in rows) == sorted(f"w{i}%s" for i in range(ROWS))
    if db.dialect.name == "postgresql":  # the trigger ran for each row, with its new value
        assert all(row["note"] == f"touched {row[weird]}" for row in rows)


def test_an_update_group_carries_each_type_as_a_row_would(pgdb):
    with MotherSession() as s:
        s.oc_query("DROP TABLE IF EXISTS typed")  # a run before, on another route
        s.oc_query("DROP TYPE IF EXISTS mood")
        s.oc_query("CREATE TYPE mood AS ENUM ('calm', 'odd')")
        s.oc_query("CREATE TABLE typed (t_id SERIAL PRIMARY KEY, v VARCHAR(20), "
                   "n NUMERIC(10, 2), d DATE, m mood, j JSON, b BOOLEAN, raw BYTEA, u UUID, "
                   "span INTERVAL, at TIMESTAMPTZ, tags TEXT[])")
        s.oc_query("INSERT INTO typed (v) SELECT 'x' FROM generate_series(1, %(n)s)",
                   {"n": ROWS})
    pgdb.refresh_schema()

    def values(i: int) -> dict[str, object]:
        return {"v": f"v{i}", "n": decimal.Decimal(i) / 4,
                "d": datetime.date(2026, 1, 1 + i % 28), "m": "odd" if i % 2 else "calm",
                "j": f'{{"i": {i}}}', "b": i % 3 == 0, "raw": bytes([i % 256]),
                "u": uuid.UUID(int=i), "span": datetime.timedelta(seconds=i)}

    with events.capture() as trace, MotherSession() as session:
        for i, record in enumerate(loaded(session, "typed", "t_id")):
            wanted = values(i)
            if i % 7 == 0:
                wanted["v"] = None  # NULLs among the values
            record.setFields(wanted)
    assert len(grouped(trace)) == 1
    with MotherSession() as s:
        rows = s.mr_query("SELECT *, j::text AS jt FROM typed ORDER BY t_id")
    for i, row in enumerate(rows):
        wanted = values(i)
        assert row["v"] == (None if i % 7 == 0 else wanted["v"])
        for name in ("n", "d", "m", "b", "u", "span"):
            assert row[name] == wanted[name], (name, row[name], wanted[name])
        assert bytes(row["raw"]) == wanted["raw"] and row["jt"] == wanted["j"]

    # what an array cannot carry as a row would goes one UPDATE a row: a datetime (naive
    # and aware ones differ), an array column, one column holding values of two types
    moments = [datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
               + datetime.timedelta(hours=i) for i in range(ROWS)]
    for change in ({"at": moments}, {"tags": [[f"t{i}", "x"] for i in range(ROWS)]},
                   {"n": [i if i % 2 else f"{i}.5" for i in range(ROWS)]}):
        [(name, column)] = change.items()
        with events.capture() as trace, MotherSession() as session:
            for record, value in zip(loaded(session, "typed", "t_id"), column):
                record.setField(name, value)
        assert grouped(trace) == [] and len(updates(trace)[0].params) == ROWS
        with MotherSession() as s:
            stored = [row[name] for row in s.mr_query(f"SELECT {name} FROM typed ORDER BY t_id")]
        expected = [decimal.Decimal(v) for v in column] if name == "n" else column
        assert stored == expected


def test_a_stale_row_of_an_update_group_after_a_copied_group_is_named(db):
    seeded(db)
    Star = getMotherBuilder("stars")
    with MotherSession() as session:
        records = loaded(session)
        victim_id = records[7].getField("star_id")
        session.oc_query(f"DELETE FROM stars WHERE star_id = {victim_id}")
        for row in stars(ROWS, offset=ROWS):  # copied first: parents before updates
            session.persist(Star(row, session=session))
        for star in records:
            star.setField("star_mass", 5000)
        with pytest.raises(mother.StaleRecordError, match=f"stars row {victim_id}\\b"):
            session.flush()
        session.rollback()
    assert count(db, "stars") == ROWS and count(db, "stars", "WHERE star_mass = 5000") == 0


def test_a_copy_first_on_a_dead_pooled_connection_sends_every_row_on_the_next(pgdb):
    rows = [{"star_id": 20_000 + i, "star_name": f"own {i}"} for i in range(ROWS)]
    session = MotherSession()
    conn = session.connection()  # taken from the pool: nothing sent on it yet
    pooler.sever(conn)
    with events.capture() as trace:
        MotherMany("stars", rows, MO_SAVE, session)  # the COPY is the first statement
    session.endSession()
    assert count(pgdb, "stars") == ROWS
    trips = [e for e in trace.events if isinstance(e, events.RoundTrip)]
    assert trips[0].error is not None  # found dead: replaced, the work done again
    [data] = [s for s in statements(trace) if s.sql.endswith("(its rows)")]
    assert data.rows == ROWS  # every row read again, on the new connection
