"""Fixtures of the quickstart's tests, in the shape of Pyramid's cookiecutter.

Every test runs on SQLite and, when ``MOTHER_TEST_PG_DSN`` names a PostgreSQL
server where it may create a database, on PostgreSQL too (``make test`` in the
dbmother checkout always sets it).
"""

import http.client
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import transaction
import webtest
from pyramid import testing
from pyramid.request import apply_request_extensions

import mother
import mother.tm
from mother_quickstart import main

HERE = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def dsn(request, tmp_path_factory):
    """A new, empty database: the application makes its tables itself."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('quickstart') / 'quickstart.db'}"
        return
    server = os.environ.get("MOTHER_TEST_PG_DSN")
    if not server:
        pytest.skip("set MOTHER_TEST_PG_DSN to a PostgreSQL server to test on it too")
    name = f"mother_quickstart_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = psycopg.conninfo.conninfo_to_dict(server)
    params["dbname"] = name
    yield psycopg.conninfo.make_conninfo(**params)
    mother.close_all()
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def app(dsn):
    """The application, built in this process as ``pserve`` builds it."""
    yield main({}, **{"mother.dsn": dsn})
    mother.close_all()


@pytest.fixture
def tm():
    """A transaction that is doomed: whatever a test writes in it is rolled back."""
    manager = transaction.TransactionManager(explicit=True)
    manager.begin()
    manager.doom()
    yield manager
    manager.abort()


@pytest.fixture
def dbsession(app, tm):
    return mother.tm.current_session(transaction_manager=tm)


@pytest.fixture
def testapp(app, tm, dbsession):
    """WebTest on the application, inside the doomed transaction (``tm.active``)."""
    return webtest.TestApp(app, extra_environ={
        "tm.active": True, "tm.manager": tm, "mother.session": dbsession})


@pytest.fixture
def dummy_request(app, tm, dbsession):
    """A request for calling views directly: the application's registry and request
    methods (``request.mother_session``), on the doomed transaction's session."""
    request = testing.DummyRequest()
    request.registry = app.registry
    request.tm = tm
    request.environ["mother.session"] = dbsession
    apply_request_extensions(request)
    return request


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def server(dsn):
    """``pserve testing.ini`` for real, once per database, on a free port: its address."""
    port = _free_port()
    pserve = Path(sys.executable).with_name("pserve")
    process = subprocess.Popen([str(pserve), "testing.ini", f"http_port={port}",
                                f"dsn={dsn}"], cwd=HERE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            connection = http.client.HTTPConnection("localhost", port, timeout=5)
            connection.request("GET", "/")
            connection.getresponse().read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"pserve did not start:\n{process.stdout.read()}")
            time.sleep(0.2)
    yield f"localhost:{port}"
    process.terminate()
    process.wait(timeout=30)
