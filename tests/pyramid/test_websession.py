"""MotherWebSessionFactory: saved at commit, forgotten on abort, unchanged sessions not written."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import webtest

import mother
from mother import ConfigError
from mother.pyramid import (
    MotherWebSessionFactory,
    WebSessionConflictError,
    create_websession_table,
)
from tests.support.databases import count
from tests.support.pyramid_app import SECRET, Boom, make_app

TABLE = "mother_websessions"


@pytest.fixture
def app(db: mother.Database) -> webtest.TestApp:
    return webtest.TestApp(make_app({}))


def _writes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The INSERT/UPDATE/DELETE statements sent to the web-session table."""
    return [record.getMessage() for record in caplog.records
            if record.name == "mother.sql" and TABLE in record.getMessage()
            and any(verb in record.getMessage() for verb in ("INSERT", "UPDATE", "DELETE"))]


def test_saved_on_commit_and_survives_requests(app: webtest.TestApp, db: mother.Database) -> None:
    assert app.get("/ws_incr").text == "1"
    assert "session" in app.cookies
    assert app.get("/ws_incr").text == "2"
    assert app.get("/ws_read").text == "2"
    assert count(db, TABLE) == 1


def test_forgotten_on_abort(app: webtest.TestApp, db: mother.Database) -> None:
    app.get("/ws_incr")
    with pytest.raises(Boom):
        app.get("/ws_incr", {"fail": "1"})
    assert app.get("/ws_read").text == "1"


def test_new_session_of_failed_request_is_not_stored(app: webtest.TestApp,
                                                     db: mother.Database) -> None:
    with pytest.raises(Boom):
        app.get("/ws_incr", {"fail": "1"})
    assert count(db, TABLE) == 0
    assert "session" not in app.cookies


def test_unchanged_session_is_not_written(app: webtest.TestApp, db: mother.Database,
                                          caplog: pytest.LogCaptureFixture) -> None:
    app.get("/ws_incr")
    caplog.set_level(logging.DEBUG, logger="mother.sql")
    caplog.clear()
    for _ in range(3):
        assert app.get("/ws_read").text == "1"
    assert _writes(caplog) == []
    reads = [r for r in caplog.records if r.name == "mother.sql" and TABLE in r.getMessage()
             and "SELECT" in r.getMessage()]
    assert len(reads) == 3
    app.get("/ws_incr")
    assert len(_writes(caplog)) == 1


def test_no_row_for_a_request_that_never_stores_data(app: webtest.TestApp, db: mother.Database,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mother.sql")
    assert app.get("/ws_read").text == "0"
    assert _writes(caplog) == []
    assert count(db, TABLE) == 0


def test_invalidate_deletes_the_row_and_the_cookie(app: webtest.TestApp,
                                                   db: mother.Database) -> None:
    app.get("/ws_incr")
    assert count(db, TABLE) == 1
    response = app.get("/ws_forget")
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert count(db, TABLE) == 0
    assert app.get("/ws_read").text == "0"


def test_flash_messages_are_popped_once(app: webtest.TestApp) -> None:
    app.get("/ws_flash", {"msg": "one"})
    app.get("/ws_flash", {"msg": "two"})
    assert app.get("/ws_pop").text == "one|two"
    assert app.get("/ws_pop").text == ""


def test_tampered_cookie_starts_a_new_session(app: webtest.TestApp, db: mother.Database) -> None:
    app.get("/ws_incr")
    value = app.cookies["session"]
    app.set_cookie("session", value[:-4] + "AAAA")
    assert app.get("/ws_read").text == "0"


def test_expired_session_is_dropped(db: mother.Database) -> None:
    app = webtest.TestApp(make_app({}))
    app.get("/ws_incr")
    # age the row by an hour: older than the default 20 minutes timeout
    session = mother.MotherSession(database=db)
    session.oc_query(f"UPDATE {TABLE} SET accessed = accessed - 3600")
    session.endSession()
    assert app.get("/ws_read").text == "0"
    assert app.get("/ws_incr").text == "1"
    assert count(db, TABLE) == 1  # the expired row was deleted with the new one's insert


def test_csrf_token_is_kept_in_the_session(db: mother.Database) -> None:
    def token(request: Any) -> Any:
        from pyramid.response import Response
        return Response(request.session.get_csrf_token())

    def extra(config: Any) -> None:
        config.add_route("token", "/token")
        config.add_view(token, route_name="token")

    app = webtest.TestApp(make_app({}, extra=extra))
    first = app.get("/token").text
    assert len(first) == 40
    assert app.get("/token").text == first


def test_concurrent_writers_do_not_lose_updates(db: mother.Database, kind: str) -> None:
    """Two requests on one web session: the later writer is replayed, both increments stay."""
    wsgi = make_app({"retry.attempts": "3"})
    gate = wsgi.registry["test.gate"]
    first = webtest.TestApp(wsgi)
    first.get("/ws_incr")  # n = 1, cookie set
    second = webtest.TestApp(wsgi, cookiejar=first.cookiejar)
    results: dict[str, str] = {}
    if kind == "sqlite":
        gate.loaded.set()  # SQLite serializes the two transactions: no interleaving possible
    slow = threading.Thread(target=lambda: results.setdefault("slow", first.get("/ws_slow").text))
    slow.start()
    assert gate.loaded.wait(60)
    results["fast"] = second.get("/ws_incr").text
    gate.other_done.set()
    slow.join()
    assert sorted([results["fast"], results["slow"]]) == ["2", "3"]
    assert first.get("/ws_read").text == "3"
    if kind == "postgresql":
        assert gate.attempts == [0, 1]  # the conflict replayed the slow request once


def test_conflict_error_is_retryable_and_a_mother_error() -> None:
    import transaction.interfaces
    from pyramid_retry import IRetryableError

    error = WebSessionConflictError("x")
    assert isinstance(error, mother.MotherError)
    assert isinstance(error, transaction.interfaces.TransientError)
    assert IRetryableError.providedBy(error)


@pytest.mark.parametrize(("options", "key"), [
    ({"secret": ""}, "secret"),
    ({"secret": SECRET, "timeout": 100, "reissue_time": 100}, "reissue_time"),
    ({"secret": SECRET, "samesite": "sometimes"}, "samesite"),
])
def test_factory_rejects_bad_options(options: dict[str, Any], key: str) -> None:
    secret = options.pop("secret")
    with pytest.raises(ConfigError) as info:
        MotherWebSessionFactory(secret, **options)
    assert info.value.key == key


def test_cookie_flags_are_configurable(db: mother.Database) -> None:
    from pyramid.config import Configurator
    from pyramid.response import Response

    def view(request: Any) -> Response:
        request.session["x"] = 1
        return Response("ok")

    settings = {"mother.websession.secret": SECRET, "mother.websession.secure": "true",
                "mother.websession.samesite": "Strict", "mother.websession.cookie_name": "ws",
                "mother.websession.max_age": "3600"}
    with Configurator(settings=settings) as config:
        config.include("mother.pyramid")
        mother.pyramid.create_websession_table(drop=True)
        config.add_route("x", "/x")
        config.add_view(view, route_name="x")
    header = webtest.TestApp(config.make_wsgi_app()).get("/x").headers["Set-Cookie"]
    assert header.startswith("ws=")
    assert "secure" in header.lower() and "SameSite=Strict" in header
    assert "HttpOnly" in header and "Max-Age=3600" in header


ODD_TABLE = 'web "sessions"; DROP TABLE stars; -- 100% :x'


def test_a_table_with_an_odd_name_works(db: mother.Database) -> None:
    def extra(config: Any) -> None:
        create_websession_table(table=ODD_TABLE, drop=True)
        config.set_session_factory(MotherWebSessionFactory(SECRET, table=ODD_TABLE,
                                                           reissue_time=None))

    app = webtest.TestApp(make_app({}, websession=False, extra=extra))
    assert app.get("/ws_incr").text == "1"
    assert app.get("/ws_incr").text == "2"
    assert count(db, ODD_TABLE) == 1
    app.get("/ws_forget")
    assert count(db, ODD_TABLE) == 0
    assert count(db, "stars") == 0  # still there


def test_a_table_that_does_not_exist_is_refused_by_name(db: mother.Database) -> None:
    evil = "nope; DROP TABLE stars; --"

    def extra(config: Any) -> None:
        config.set_session_factory(MotherWebSessionFactory(SECRET, table=evil))

    app = webtest.TestApp(make_app({}, websession=False, extra=extra))
    with pytest.raises(mother.UnknownTableError, match="nope"):
        app.get("/ws_incr")
    assert count(db, "stars") == 0  # still there
