"""mother.pyramid with the real application: commit, abort, veto, doom, retries, threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import webtest

import mother
from tests.support.databases import count
from tests.support.pyramid_app import make_app


@pytest.fixture
def app(db: mother.Database) -> webtest.TestApp:
    return webtest.TestApp(make_app({"tm.commit_veto": "pyramid_tm.default_commit_veto"}))


def test_commit_on_success(app: webtest.TestApp, db: mother.Database) -> None:
    response = app.get("/ok", {"name": "kept"})
    assert response.text.startswith("added ")
    assert count(db, "stars", "WHERE star_name = 'kept'") == 1


def test_session_is_named_after_the_request(app: webtest.TestApp) -> None:
    first = app.get("/ok").text
    second = app.get("/ok").text
    assert "GET /ok #" in first and "GET /ok #" in second
    assert first.split("#")[1] != second.split("#")[1]


def test_abort_on_exception(app: webtest.TestApp, db: mother.Database) -> None:
    from tests.support.pyramid_app import Boom

    with pytest.raises(Boom):
        app.get("/fail", {"name": "lost"})
    assert count(db, "stars", "WHERE star_name = 'lost'") == 0
    app.get("/ok", {"name": "after"})  # the connection went back clean
    assert count(db, "stars", "WHERE star_name = 'after'") == 1


def test_abort_when_an_exception_view_renders_the_error(
        app: webtest.TestApp, db: mother.Database) -> None:
    response = app.get("/handled", {"name": "lost"}, status=500)
    assert "handled" in response.text
    assert count(db, "stars", "WHERE star_name = 'lost'") == 0


@pytest.mark.parametrize("code", [404, 418, 500, 503])
def test_abort_on_error_status_veto(app: webtest.TestApp, db: mother.Database, code: int) -> None:
    app.get("/status", {"name": "vetoed", "status": code}, status=code)
    assert count(db, "stars", "WHERE star_name = 'vetoed'") == 0


def test_commit_veto_lets_2xx_and_3xx_commit(app: webtest.TestApp, db: mother.Database) -> None:
    app.get("/status", {"name": "fine", "status": 201}, status=201)
    app.get("/status", {"name": "fine", "status": 302}, status=302)
    assert count(db, "stars", "WHERE star_name = 'fine'") == 2


def test_abort_on_doomed_transaction(app: webtest.TestApp, db: mother.Database) -> None:
    assert app.get("/doom", {"name": "doomed"}).text == "doomed"
    assert count(db, "stars", "WHERE star_name = 'doomed'") == 0


def test_injected_session_in_doomed_transaction(db: mother.Database) -> None:
    """Like the cookiecutter's ``app.dbsession``: a test session in the environ, doomed manager."""
    import transaction

    manager = transaction.TransactionManager(explicit=True)
    manager.begin()
    manager.doom()  # as in the docs: nothing a test writes survives it
    session = mother.tm.current_session(transaction_manager=manager)
    app = webtest.TestApp(make_app({}), extra_environ={"mother.session": session,
                                                          "tm.active": True, "tm.manager": manager})
    app.get("/ok", {"name": "injected"})
    assert session.ov_query("SELECT COUNT(*) AS n FROM stars WHERE star_name = 'injected'") == 1
    manager.abort()
    assert count(db, "stars", "WHERE star_name = 'injected'") == 0


def test_sixteen_concurrent_requests_half_failing(dsn: str, tmp_path: Path) -> None:
    db = mother.init_mother(dsn=dsn, pool_min=1, pool_max=20, pool_timeout=30)
    mother.tutorial.create(db)
    try:
        app = make_app({})
        start = threading.Barrier(16)
        results: dict[int, int] = {}

        def worker(number: int) -> None:
            client = webtest.TestApp(app)
            start.wait()
            path = "/ok" if number % 2 == 0 else "/handled"
            response = client.get(path, {"name": f"t{number}"}, expect_errors=True)
            results[number] = response.status_int

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == list(range(16))
        assert all(results[n] == (200 if n % 2 == 0 else 500) for n in range(16))
        stored = {row["star_name"] for row in mother.MotherSession(database=db).mr_query(
            "SELECT star_name FROM stars")}
        assert stored == {f"t{n}" for n in range(0, 16, 2)}
    finally:
        mother.close_all()


def test_request_session_after_register_joins_the_request_transaction(
        db: mother.Database) -> None:
    """register() (the thread-local manager, as Zope's directive does) must not take
    request.mother_session, which belongs to request.tm."""
    from mother.tm import register, unregister
    from tests.support.pyramid_app import Boom

    register()
    try:
        app = webtest.TestApp(make_app())
        assert app.get("/ok", {"name": "kept"}).text.startswith("added ")
        with pytest.raises(Boom):
            app.get("/fail", {"name": "lost"})
    finally:
        unregister()
    assert count(db, "stars", "WHERE star_name = 'kept'") == 1
    assert count(db, "stars", "WHERE star_name = 'lost'") == 0
