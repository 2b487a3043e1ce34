"""Every statement is logged on mother.sql with the session name, parameters kept apart."""

from __future__ import annotations

import logging

from mother import MO_DEL, MO_LOAD, MO_SAVE, MotherBox, MotherMany, MotherSession
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
    assert record.session == "logged"
    assert "secret-value" not in record.sql
    assert "secret-value" in repr(record.params)
    assert record.getMessage().startswith("[logged] INSERT")
    assert any(r.sql == "COMMIT" and r.session == "logged" for r in records)


def test_shared_connection_sets_and_rollback_are_logged(db, caplog):
    caplog.set_level(logging.DEBUG, logger="mother.sql")
    MotherMany(ClsStars, [{"star_name": "a"}, {"star_name": "b"}], MO_SAVE)
    MotherBox(ClsStars, {"star_name": "a"}, MO_LOAD)
    records = sql_records(caplog)
    inserts = [r for r in records if r.sql.startswith("INSERT")]
    assert len(inserts) == 1 and "'a'" not in inserts[0].sql
    MotherMany(ClsStars, [{"star_name": "a"}, {"star_name": "b"}], MO_DEL)  # executemany
    deletes = [r for r in sql_records(caplog) if r.sql.startswith("DELETE")]
    assert len(deletes) == 1 and deletes[0].params == [{"k0": "a"}, {"k0": "b"}]
    assert "2 parameter sets" in deletes[0].getMessage()
    select = [r for r in records if r.sql.startswith("SELECT")][0]
    assert select.session.endswith("-shared")
    assert "'a'" not in select.sql and "a" in select.params.values()
    session = MotherSession("undo")
    ClsStars({"star_name": "x"}, MO_SAVE, session=session)
    session.rollback()
    session.endSession()
    assert any(r.sql == "ROLLBACK" and r.session == "undo" for r in sql_records(caplog))


def test_nothing_logged_above_debug(db, caplog):
    caplog.set_level(logging.INFO, logger="mother.sql")
    ClsStars({"star_name": "quiet"}, MO_SAVE)
    assert sql_records(caplog) == []
