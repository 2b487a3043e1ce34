"""get_session() inside real publisher requests (WSGI + WebTest): commit, abort, retries, ZODB."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from transaction.interfaces import TransientError
from ZODB.POSException import ConflictError

from mother.zope import TransientDatabaseError
from tests.support.zopeapp import views
from tests.support.zopeapp.checks import counter, rows

KIND_DB = {"postgresql": ("default", "pg"), "sqlite": ("lite", "lite")}


@pytest.mark.parametrize("kind", sorted(KIND_DB))
def test_get_session_commits_with_the_request(kind: str, browser: Any,
                                              zope_tables: dict[str, Any]) -> None:
    name, key = KIND_DB[kind]
    response = browser.get("/@@mother-insert", {"db": name, "body": "hello"})
    assert response.status_int == 200
    assert "inserted by" in response.text
    assert rows(zope_tables[key]) == ["hello"]


@pytest.mark.parametrize("kind", sorted(KIND_DB))
def test_get_session_aborts_when_the_view_fails(kind: str, browser: Any,
                                                zope_tables: dict[str, Any]) -> None:
    name, key = KIND_DB[kind]
    with pytest.raises(ValueError, match="failed after writing"):
        browser.get("/@@mother-insert-fail", {"db": name, "body": "lost"})
    assert rows(zope_tables[key]) == []
    browser.get("/@@mother-insert", {"db": name, "body": "next"})
    assert rows(zope_tables[key]) == ["next"]


def test_serialization_failure_in_a_statement_is_retried(browser: Any,
                                                          zope_tables: dict[str, Any]) -> None:
    response = browser.get("/@@mother-serial-statement")
    assert views.ATTEMPTS["serial_statement"] == 2
    assert response.text == "attempt 2 read 100"
    assert counter(zope_tables["pg"], 1) == 101
    [failure] = views.FAILURES
    assert isinstance(failure["error"], TransientDatabaseError)
    assert isinstance(failure["error"], TransientError)
    assert isinstance(failure["cause"], psycopg.errors.SerializationFailure)
    assert failure["cause"].sqlstate == "40001"
    assert failure["retry"] is True


def test_serialization_failure_at_commit_is_retried(browser: Any,
                                                     zope_tables: dict[str, Any]) -> None:
    response = browser.get("/@@mother-serial-flush")
    assert response.text == "attempt 2"
    assert views.ATTEMPTS["serial_flush"] == 2
    assert counter(zope_tables["pg"], 2) == 101
    [failure] = views.FAILURES
    assert isinstance(failure["error"], TransientDatabaseError)
    assert failure["cause"].sqlstate == "40001"
    assert failure["retry"] is True


def _hits(zope_instance: dict[str, Any]) -> int:
    import Zope2

    app = Zope2.app()
    try:
        return app.mother_box.get("hits", 0)
    finally:
        app._p_jar.close()


def test_zodb_and_postgresql_commit_together(browser: Any, zope_tables: dict[str, Any]) -> None:
    before = _hits(zope_tables)
    browser.get("/@@mother-both", {"body": "both"})
    assert rows(zope_tables["pg"]) == ["both"]
    assert _hits(zope_tables) == before + 1


def test_failing_postgresql_vote_aborts_the_zodb_change(browser: Any,
                                                         zope_tables: dict[str, Any]) -> None:
    before = _hits(zope_tables)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        browser.get("/@@mother-both", {"body": "orphan", "fail": "postgresql"})
    assert views.ATTEMPTS["both"] == 1  # not transient: no retry
    assert rows(zope_tables["pg"], "guarded") == []
    assert _hits(zope_tables) == before
    with psycopg.connect(zope_tables["pg"]) as conn:
        assert conn.execute("SELECT count(*) FROM pg_prepared_xacts "
                            "WHERE database = current_database()").fetchone()[0] == 0


def test_failing_zodb_commit_rolls_back_postgresql(browser: Any,
                                                    zope_tables: dict[str, Any]) -> None:
    with pytest.raises(ConflictError):
        browser.get("/@@mother-both", {"body": "conflicted", "fail": "zodb"})
    assert views.ATTEMPTS["both"] == 3  # max-conflict-retries 2: three attempts, all conflicting
    assert rows(zope_tables["pg"]) == []
    assert _hits(zope_tables) == 1000  # only the other connection's write
    with psycopg.connect(zope_tables["pg"]) as conn:
        assert conn.execute("SELECT count(*) FROM pg_prepared_xacts "
                            "WHERE database = current_database()").fetchone()[0] == 0
