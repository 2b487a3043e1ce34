"""mother.replica_reads = auto over real HTTP (pserve), with the replicas of
tests/support/replicas.py: a client reads its own write on GET, through the cookie its
POST got, while a client without it reads from a replica."""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

import mother
from mother.pyramid.replicas import replica_reads_settings
from tests.support.browser import free_port, pserve
from tests.support.replicas import Replicated
from tools import pgreplicas

pytestmark = pytest.mark.timeout(120)

INI = """\
[app:main]
use = call:tests.support.replicas_app:main
mother.dsn = {dsn}
mother.replicas =
    {normal}
    {delayed}
mother.replica_max_lag = 2
mother.replica_check = 0.2
mother.replica_wait = {wait}
mother.pool_max = 4
mother.recover_interval = off
mother.replica_reads = auto
mother.replica_reads.secret = {secret}

[server:main]
use = egg:waitress#main
listen = 127.0.0.1:{port}
"""
SECRET = "replica-test-secret-" + "y" * 30


def served(replicas: Replicated, tmp_path: Path, settings: str = "",
           wait: float = 0.3) -> Iterator[str]:
    """The application of tests/support/replicas_app.py under pserve, ``settings`` (INI
    lines) added to its own, reads after a write waiting up to ``wait`` seconds for a
    replica that has it; its URL."""
    port = free_port()
    ini = tmp_path / "replicas.ini"
    ini.write_text(INI.format(dsn=replicas.primary, normal=replicas.dsn(replicas.normal),
                              delayed=replicas.dsn(replicas.delayed), secret=SECRET,
                              port=port, wait=wait).replace("[server:main]",
                                                           f"{settings}\n[server:main]"))
    with pserve(ini, port) as url:
        yield url


@pytest.fixture
def app_url(replicas: Replicated, tmp_path: Path) -> Iterator[str]:
    yield from served(replicas, tmp_path)


class Client:
    """An HTTP client that keeps the cookies it is given (the position's, the web session's)."""

    def __init__(self, url: str) -> None:
        self.port = int(url.rsplit(":", 1)[1])
        #: by name: ``name=value`` as the response set it
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, **params: str) -> tuple[int, Any, str | None]:
        """Status, body (JSON when it is) and the position's cookie set, if any."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Cookie": "; ".join(self.cookies.values())} if self.cookies else {}
        query = urlencode(params)
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            connection.request(method, path, body=query, headers=headers)
        else:
            connection.request(method, f"{path}?{query}", headers=headers)
        response = connection.getresponse()
        body = response.read().decode()
        connection.close()
        position = None
        for header in response.headers.get_all("Set-Cookie") or []:
            pair = header.split(";", 1)[0]
            self.cookies[pair.split("=", 1)[0]] = pair
            if pair.startswith("mother_wal="):
                position = header
        try:
            return response.status, json.loads(body), position
        except ValueError:
            return response.status, body, position


def test_a_client_reads_its_own_write_on_get_and_a_client_without_the_cookie_a_replica(
        app_url: str) -> None:
    writer, other = Client(app_url), Client(app_url)
    status, body, cookie = writer.request("POST", "/stars", name="Polaris")
    assert status == 200 and body["added"] and cookie and cookie.startswith("mother_wal=")
    for _ in range(3):  # right after the write: the delayed replica cannot have it
        status, body, cookie = writer.request("GET", "/stars", name="Polaris")
        assert status == 200 and body["stars"] == 1 and body["readonly"]
        assert body["port"] != pgreplicas.REPLICAS[1].port
        assert body["standby"] == (body["port"] == pgreplicas.REPLICAS[0].port)
        assert cookie is None  # a read sets no cookie
    status, body, cookie = other.request("GET", "/stars", name="Polaris")
    assert status == 200 and body["standby"] and body["readonly"] and cookie is None


def test_a_forged_cookie_counts_as_none(app_url: str) -> None:
    client = Client(app_url)
    client.cookies["mother_wal"] = 'mother_wal="eyJkZWZhdWx0IjoiRkYvMCJ9"'  # unsigned
    status, body, _ = client.request("GET", "/stars", name="nobody")
    assert status == 200 and body["standby"] and body["stars"] == 0


def test_a_view_that_writes_on_get_says_so(app_url: str) -> None:
    client = Client(app_url)
    status, body, cookie = client.request("GET", "/add-by-get", name="Sirius")
    assert status == 409 and body.startswith("ReadOnlySessionError") and cookie is None
    status, body, cookie = client.request("GET", "/add-on-get", name="Sirius")
    assert status == 200 and body["added"] and cookie
    status, body, _ = client.request("GET", "/stars", name="Sirius")
    assert body["stars"] == 1 and body["port"] != pgreplicas.REPLICAS[1].port


def test_a_write_committed_before_the_request_ends_is_remembered(app_url: str) -> None:
    client, name = Client(app_url), f"Deneb {uuid.uuid4().hex[:8]}"
    status, body, cookie = client.request("POST", "/add-then-read", name=name)
    assert status == 200 and body["added"] and body["stars"] == 1  # the next one wrote nothing
    assert cookie and cookie.startswith("mother_wal=")
    for _ in range(3):  # right after: the delayed replica cannot have it yet
        status, body, _ = client.request("GET", "/stars", name=name)
        assert status == 200 and body["stars"] == 1


@pytest.mark.parametrize("path", ["/add-after-factory", "/add-after-decorator"])
def test_a_view_that_writes_on_get_may_write_after_something_read_first(
        app_url: str, path: str) -> None:
    client, name = Client(app_url), f"{path.strip('/')} {uuid.uuid4().hex[:8]}"
    status, body, cookie = client.request("GET", path, name=name)
    assert status == 200 and body["added"] and cookie
    status, body, _ = client.request("GET", "/stars", name=name)
    assert body["stars"] == 1


@pytest.mark.parametrize(("settings", "key"), [
    ({"mother.replica_reads": "always"}, "mother.replica_reads"),
    ({"mother.replica_reads": "auto"}, "mother.replica_reads.secret"),
    ({"mother.replica_reads": "auto", "mother.replica_reads.secret": "s",
      "mother.replica_reads.colour": "red"}, "mother.replica_reads.colour"),
    ({"mother.replica_reads": "auto", "mother.replica_reads.secret": "s",
      "mother.replica_reads.max_age": "long"}, "mother.replica_reads.max_age"),
])
def test_bad_replica_reads_settings_name_the_setting(settings: dict[str, str], key: str) -> None:
    with pytest.raises(mother.ConfigError) as refused:
        replica_reads_settings(settings)
    assert refused.value.key == key


@pytest.fixture
def websession_url(replicas: Replicated, tmp_path: Path) -> Iterator[str]:
    """The same application, its web sessions kept in the database that has the replicas;
    a read after the web session's write waits long enough for the normal replica to have
    it, even on a loaded machine (its test asks that the read runs there)."""
    yield from served(replicas, tmp_path, f"mother.websession.secret = {SECRET}\n", wait=5.0)


def test_web_sessions_beside_replica_reads_are_written_and_read_on_the_primary(
        websession_url: str) -> None:
    client = Client(websession_url)
    for visit in range(1, 4):  # GET after GET: each sees the count the one before wrote
        status, body, position = client.request("GET", "/visit")
        assert status == 200 and body["visits"] == visit
        assert body["readonly"] and body["standby"]  # the request's own reads: a replica
        assert body["web_session_standby"] is False  # the web session: the primary
        assert position and position.startswith("mother_wal=")  # its write is remembered
    status, body, _ = Client(websession_url).request("GET", "/visit")  # another client
    assert status == 200 and body["visits"] == 1


def test_replica_reads_are_off_by_default() -> None:
    assert replica_reads_settings({}) is None
    assert replica_reads_settings({"mother.replica_reads": "off"}) is None
