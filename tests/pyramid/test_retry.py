"""Retries: a real transient error (PostgreSQL SQLSTATE 40001, SQLite "database is locked")
inside a view, or at commit, replays the request once; the row is stored once."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
import webtest
from pyramid.response import Response

import mother
from mother import MO_DEL, MO_LOAD, MotherBox, StaleRecordError
from tests.support.classes import ClsStars
from tests.support.databases import count
from tests.support.pyramid_app import make_app


@pytest.fixture
def fast_db(dsn: str) -> Any:
    """The default database with a short SQLite busy timeout (so a held lock fails fast)."""
    database = mother.init_mother(dsn=dsn, pool_min=1, pool_max=10, pool_timeout=5,
                                  busy_timeout=0.2)
    mother.tutorial.create(database)
    yield database
    mother.close_all()


def _interfere_pg(database: mother.Database) -> None:
    """Another connection commits an update of the row this request's snapshot already saw."""
    with psycopg.connect(database.settings.dsn, autocommit=True) as other:
        other.execute("UPDATE stars SET star_age = star_age + 1 WHERE star_name = 'counter'")


def transient_view(request: Any) -> Response:
    """First attempt: genuinely hit the database's transient error; second attempt: succeed."""
    attempts = request.registry["test.attempts"]
    attempt = request.environ.get("retry.attempt")
    attempts.append(attempt)
    session = request.mother_session
    database = session.database
    if database.dialect.name == "postgresql":
        session.oc_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        session.ov_query("SELECT star_age FROM stars WHERE star_name = 'counter'")
        if attempt == 0:
            _interfere_pg(database)
        # SQLSTATE 40001 on the first attempt: the row changed since our snapshot
        session.oc_query("UPDATE stars SET star_age = star_age + 1 WHERE star_name = 'counter'")
    elif attempt == 0:
        path = database.settings.dsn[len("sqlite:///"):]
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            session.oc_query("UPDATE stars SET star_age = star_age + 1 WHERE star_name = 'counter'")
        finally:
            blocker.rollback()
            blocker.close()
    else:
        session.oc_query("UPDATE stars SET star_age = star_age + 1 WHERE star_name = 'counter'")
    session.oc_query("INSERT INTO stars (star_name) VALUES ('once')")
    return Response("stored")


def commit_skew_view(request: Any) -> Response:
    """SERIALIZABLE write skew: the failure comes from the commit (PREPARE/COMMIT), not the view."""
    request.registry["test.attempts"].append(request.environ.get("retry.attempt"))
    session = request.mother_session
    session.oc_query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    session.ov_query("SELECT COUNT(*) AS n FROM stars WHERE star_name = 'skew'")
    other = None
    if request.environ.get("retry.attempt") == 0:
        other = psycopg.connect(session.database.settings.dsn)
        other.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        other.execute("SELECT COUNT(*) FROM stars WHERE star_name = 'skew'")
        other.execute("INSERT INTO stars (star_name) VALUES ('skew')")
    session.oc_query("INSERT INTO stars (star_name) VALUES ('skew')")
    if other is not None:
        other.commit()  # first committer wins; ours fails at commit with SQLSTATE 40001
        other.close()
    return Response("written")


def _views(config: Any) -> None:
    config.registry["test.attempts"] = []
    config.add_route("transient", "/transient")
    config.add_view(transient_view, route_name="transient")
    config.add_route("skew", "/skew")
    config.add_view(commit_skew_view, route_name="skew")


def _counter(database: mother.Database) -> None:
    session = mother.MotherSession(database=database)
    session.oc_query("INSERT INTO stars (star_name, star_age) VALUES ('counter', 0)")
    session.endSession()


def test_transient_error_in_view_replays_once(fast_db: mother.Database, kind: str) -> None:
    _counter(fast_db)
    app = make_app({"retry.attempts": "3"}, websession=False, extra=_views)
    response = webtest.TestApp(app).get("/transient")
    assert response.text == "stored"
    assert app.registry["test.attempts"] == [0, 1]
    assert count(fast_db, "stars", "WHERE star_name = 'once'") == 1
    interfered = 1 if kind == "postgresql" else 0
    age = mother.MotherSession(database=fast_db).ov_query(
        "SELECT star_age FROM stars WHERE star_name = 'counter'")
    assert age == 1 + interfered


def test_transient_error_on_last_attempt_reaches_the_client(
        fast_db: mother.Database, kind: str) -> None:
    _counter(fast_db)
    app = make_app({"retry.attempts": "1"}, websession=False, extra=_views)
    expected = (psycopg.errors.SerializationFailure if kind == "postgresql"
                else sqlite3.OperationalError)
    with pytest.raises(expected):
        webtest.TestApp(app).get("/transient")
    assert app.registry["test.attempts"] == [0]
    assert count(fast_db, "stars", "WHERE star_name = 'once'") == 0


def test_serialization_failure_at_commit_replays_once(pgdb: mother.Database) -> None:
    app = make_app({"retry.attempts": "2"}, websession=False, extra=_views)
    response = webtest.TestApp(app).get("/skew")
    assert response.text == "written"
    assert app.registry["test.attempts"] == [0, 1]
    # the other transaction's row and ours, each once
    assert count(pgdb, "stars", "WHERE star_name = 'skew'") == 2


def test_serialization_failure_at_commit_reaches_exception_views(
        pgdb: mother.Database, tmp_path: Path) -> None:
    """On the last attempt a commit error is rendered by the application's exception view."""
    def error_view(error: Exception, request: Any) -> Response:
        return Response(f"sorry: {type(error).__name__}", status=503)

    def extra(config: Any) -> None:
        _views(config)
        config.add_view(error_view, context=psycopg.errors.SerializationFailure)

    app = make_app({"retry.attempts": "1"}, websession=False, extra=extra)
    response = webtest.TestApp(app).get("/skew", status=503)
    assert response.text == "sorry: SerializationFailure"
    assert count(pgdb, "stars", "WHERE star_name = 'skew'") == 1  # only the other transaction's


def stale_view(request: Any) -> Response:
    """The first attempt deletes the loaded row behind the unit of work's back, so that its
    update is stale when the commit flushes it (on PostgreSQL with the COMMIT riding along)."""
    request.registry["test.attempts"].append(request.environ.get("retry.attempt"))
    session = request.mother_session
    where = {"star_name": "counter"}
    (star,) = MotherBox(ClsStars, where, MO_LOAD, session=session).getRecords(flag_obj=True)
    if request.environ.get("retry.attempt") == 0:
        MotherBox(ClsStars, where, MO_DEL, session=session)  # a plain statement
    star.setField("star_age", 41)
    return Response("updated")


def _stale_views(config: Any) -> None:
    config.registry["test.attempts"] = []
    config.add_route("stale", "/stale")
    config.add_view(stale_view, route_name="stale")


@pytest.mark.parametrize("attempts", [1, 2])
def test_stale_record_at_commit_replays_the_request(fast_db: mother.Database,
                                                    attempts: int) -> None:
    _counter(fast_db)
    app = make_app({"retry.attempts": str(attempts)}, websession=False, extra=_stale_views)
    if attempts == 1:
        with pytest.raises(StaleRecordError):
            webtest.TestApp(app).get("/stale")
        assert count(fast_db, "stars", "WHERE star_name = 'counter' AND star_age = 0") == 1
    else:
        assert webtest.TestApp(app).get("/stale").text == "updated"
        assert app.registry["test.attempts"] == [0, 1]
        assert count(fast_db, "stars", "WHERE star_name = 'counter' AND star_age = 41") == 1
