"""Every statement sent is logged on mother.sql (a listener of mother.events) with the
session name, the parameters kept apart, BEGIN, COMMIT and ROLLBACK included."""

from __future__ import annotations

import logging

import transaction

import mother.tm
from mother import MO_DEL, MO_LOAD, MO_SAVE, MotherBox, MotherMany, MotherSession, events
from tests.support.classes import ClsStars


def sql_records(caplog):
    return [r for r in caplog.records if r.name == "mother.sql"]


def test_statement_logged_with_session_and_parameters_apart(db, caplog):
    caplog.set_level(logging.DEBUG, logger="mother.sql")
    with MotherSession("logged") as session:
        ClsStars({"star_name": "secret-value"}, MO_SAVE, session=session)
    records = sql_records(caplog)
    inserts = [r for r in records if r.sql.startswith("INSERT")]
    assert len(inserts) == 1
    record = inserts[0]
    assert record.levelno == logging.DEBUG
    assert record.session == "logged" and record.database == db.name
    assert "secret-value" not in record.sql
    assert "secret-value" in repr(record.params)
    assert record.getMessage().startswith("[logged] INSERT")
    # SQLite counts the rows of an INSERT … RETURNING only once they are fetched
    assert record.rows == (1 if db.dialect.name == "postgresql" else None)
    assert record.duration >= 0 and record.error is None
    mine = [r.sql for r in records if r.session == "logged"]
    assert mine[0].startswith("BEGIN") and mine.index("COMMIT") > mine.index(record.sql)


def test_shared_connection_sets_and_rollback_are_logged(db, caplog):
    caplog.set_level(logging.DEBUG, logger="mother.sql")
    MotherMany(ClsStars, [{"star_name": "a"}, {"star_name": "b"}], MO_SAVE)
    MotherBox(ClsStars, {"star_name": "a"}, MO_LOAD)
    records = sql_records(caplog)
    inserts = [r for r in records if r.sql.startswith("INSERT")]
    assert inserts and all("'a'" not in r.sql and "'b'" not in r.sql for r in inserts)
    assert "'a'" in repr([r.params for r in inserts]) and "'b'" in repr([r.params for r in inserts])
    MotherMany(ClsStars, [{"star_name": "a"}, {"star_name": "b"}], MO_DEL)  # executemany
    deletes = [r for r in sql_records(caplog) if r.sql.startswith("DELETE")]
    if db.dialect.name == "postgresql":  # one pipeline: one statement, its parameter sets
        assert len(deletes) == 1 and deletes[0].params == [{"k0": "a"}, {"k0": "b"}]
        assert "2 parameter sets" in deletes[0].getMessage() and deletes[0].rows == 2
    else:  # one call into sqlite3 per parameter set
        assert [r.params for r in deletes] == [{"k0": "a"}, {"k0": "b"}]
    assert all("'a'" not in r.sql for r in deletes)
    select = [r for r in records if r.sql.startswith("SELECT \"stars\"")
              or r.sql.startswith("SELECT `stars`")][0]
    assert select.session.endswith("-shared")
    assert "'a'" not in select.sql and "a" in select.params.values()
    session = MotherSession("undo", defer_writes=False)  # the INSERT goes at once
    ClsStars({"star_name": "x"}, MO_SAVE, session=session)
    session.rollback()
    session.endSession()
    assert any(r.sql == "ROLLBACK" and r.session == "undo" for r in sql_records(caplog))


def test_two_phase_commit_is_logged_statement_by_statement(pg_dsns, caplog):
    for name, dsn in zip(("default", "other"), pg_dsns):
        mother.tutorial.create(mother.init_mother(dsn=dsn, name=name, recover_interval=None))
    caplog.set_level(logging.DEBUG, logger="mother.sql")
    transaction.abort()
    try:
        for name in ("default", "other"):
            session = MotherSession(f"tpc-{name}", database=name)
            mother.tm.join(session)
            ClsStars({"star_name": "two"}, MO_SAVE, session=session)
        transaction.commit()
    finally:
        transaction.abort()
        mother.close_all()
    sent = [r.sql for r in sql_records(caplog) if r.session == "tpc-other"]
    assert sum(s.startswith("PREPARE TRANSACTION 'mother:") for s in sent) == 1
    assert sum(s.startswith("COMMIT PREPARED 'mother:") for s in sent) == 1


def test_nothing_logged_above_debug(db, caplog):
    caplog.set_level(logging.INFO, logger="mother.sql")
    ClsStars({"star_name": "quiet"}, MO_SAVE)
    assert sql_records(caplog) == []
    assert events.log_statements not in events.listeners


def test_the_logger_follows_its_level_from_the_next_session(db, caplog):
    caplog.set_level(logging.DEBUG, logger="mother.sql")
    with MotherSession("loud") as session:
        session.oc_query("DELETE FROM stars")
    loud = sql_records(caplog)
    caplog.set_level(logging.INFO, logger="mother.sql")
    with MotherSession("quiet") as session:
        session.oc_query("DELETE FROM stars")
    assert "loud" in {r.session for r in loud} and sql_records(caplog) == loud
    assert events.listeners == ()
