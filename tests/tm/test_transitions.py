"""The data manager's transition table (``MOVES``), move by move, against real servers.

Each scenario runs a real transaction and compares the moves every branch made
(logged by ``MotherDataManager.move``) with the path the table's docstring draws
for it; together the scenarios walk every move of the table, failing branches
included (first, between, last; a reply lost after PREPARE ran).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import transaction
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import mother
from mother import MO_SAVE, MotherSession, tutorial
from mother.tm import join
from mother.tm.datamanager import (
    ACTIVE,
    COMMITTED,
    DONE,
    IN_DOUBT,
    MOVES,
    PREPARED,
    READ,
    READY,
)
from tests.support.classes import ClsStars
from tests.support.databases import count
from tests.support.tm import Boom, Foreign, boom, prepared, second_database
from tools.rtproxy import RoundTripProxy

pytestmark = [pytest.mark.usefixtures("clean_transaction"), pytest.mark.timeout(60)]

Path_ = list[tuple[str, str]]
#: the path each scenario's branches take: {scenario: {session name: moves}}
PATHS: dict[str, dict[str, Path_]] = {
    "the only resource commits in tpc_begin": {
        "one": [(ACTIVE, COMMITTED), (COMMITTED, DONE)]},
    "the writer commits in the decision vote, a reader after it in tpc_finish": {
        "one": [(ACTIVE, READ), (READ, COMMITTED), (COMMITTED, DONE)],
        "two": [(ACTIVE, READY), (READY, COMMITTED), (COMMITTED, DONE)]},
    "a foreign vote fails last: a reader and the sole writer roll back": {
        "one": [(ACTIVE, READ), (READ, DONE)],
        "two": [(ACTIVE, READY), (READY, DONE)]},
    "two writers prepare, the decider commits in the decision vote": {
        "one": [(ACTIVE, READY), (READY, PREPARED), (PREPARED, COMMITTED),
                (COMMITTED, DONE)],
        "two": [(ACTIVE, READY), (READY, PREPARED), (PREPARED, DONE)]},
    "abort before the commit": {
        "one": [(ACTIVE, DONE)], "two": [(ACTIVE, DONE)]},
    "a foreign tpc_begin fails last: ready branches roll back": {
        "one": [(ACTIVE, READY), (READY, DONE)],
        "two": [(ACTIVE, READY), (READY, DONE)]},
    "a foreign vote fails last: prepared branches roll back": {
        "one": [(ACTIVE, READY), (READY, PREPARED), (PREPARED, DONE)],
        "two": [(ACTIVE, READY), (READY, PREPARED), (PREPARED, DONE)]},
    "the reply to a PREPARE is lost: in doubt, then rolled back": {
        "one": [(ACTIVE, READY), (READY, PREPARED), (PREPARED, DONE)],
        "two": [(ACTIVE, READY), (READY, IN_DOUBT), (IN_DOUBT, DONE)]},
}


def test_the_scenarios_walk_every_move_of_the_table() -> None:
    walked = {move for paths in PATHS.values() for path in paths.values() for move in path}
    assert walked == MOVES


@pytest.fixture
def moves(caplog: pytest.LogCaptureFixture) -> Callable[[], dict[str, Path_]]:
    """The moves each session's branch made so far, from the data manager's log."""
    caplog.set_level(logging.DEBUG, logger="mother.tm.datamanager")

    def made() -> dict[str, Path_]:
        found: dict[str, Path_] = {}
        for record in caplog.records:
            move = getattr(record, "move", None)
            if move is not None:
                found.setdefault(record.session, []).append(move)
        return found

    return made


@pytest.fixture
def two(pgdb: mother.Database, request: pytest.FixtureRequest, tmp_path: Path
        ) -> tuple[mother.Database, mother.Database]:
    return pgdb, second_database("postgresql", request, tmp_path)


def writer(name: str, database: str = "default", connected: bool = False) -> MotherSession:
    """A session that wrote a star, still pending; with ``connected`` its transaction has
    run on its connection (a read), so that its vote sends at once with the others'."""
    session = MotherSession(name, database=database)
    join(session)
    if connected:
        session.mr_query("SELECT 1 AS x")
    ClsStars({"star_name": name}, MO_SAVE, session=session)
    return session


def stars(pair: tuple[mother.Database, mother.Database]) -> tuple[int, int]:
    return count(pair[0], "stars"), count(pair[1], "stars")


def test_the_only_resource(pgdb: mother.Database, moves) -> None:
    writer("one")
    transaction.commit()
    assert moves() == PATHS["the only resource commits in tpc_begin"]


def test_a_reader_beside_a_writer(two, moves) -> None:
    reader = MotherSession("one")
    join(reader)
    reader.mr_query("SELECT 1 AS x")
    writer("two", "second")
    transaction.commit()
    assert moves() == PATHS[
        "the writer commits in the decision vote, a reader after it in tpc_finish"]
    assert stars(two) == (0, 1)


def test_a_reader_beside_a_writer_whose_transaction_fails(two, moves) -> None:
    reader = MotherSession("one")
    join(reader)
    reader.mr_query("SELECT 1 AS x")
    writer("two", "second")
    transaction.get().join(Foreign("~foreign", "tpc_vote", boom))  # after both branches
    with pytest.raises(Boom):
        transaction.commit()
    transaction.abort()
    assert moves() == PATHS["a foreign vote fails last: a reader and the sole writer roll back"]
    assert stars(two) == (0, 0)


def test_two_writers(two, moves) -> None:
    writer("one"), writer("two", "second")
    transaction.commit()
    assert moves() == PATHS["two writers prepare, the decider commits in the decision vote"]
    assert stars(two) == (1, 1)


def test_abort(two, moves) -> None:
    writer("one"), writer("two", "second")
    transaction.abort()
    assert moves() == PATHS["abort before the commit"]
    assert stars(two) == (0, 0)


@pytest.mark.parametrize(("phase", "scenario"), [
    ("tpc_begin", "a foreign tpc_begin fails last: ready branches roll back"),
    ("tpc_vote", "a foreign vote fails last: prepared branches roll back")])
def test_a_foreign_failure_after_the_branches(two, moves, phase: str, scenario: str) -> None:
    writer("one"), writer("two", "second")
    transaction.get().join(Foreign("~foreign", phase, boom))  # after both branches
    with pytest.raises(Boom):
        transaction.commit()
    assert moves() == PATHS[scenario]
    assert stars(two) == (0, 0)
    assert prepared(two[0].settings.dsn) == prepared(two[1].settings.dsn) == []


@pytest.fixture
def cut_prepare(pg_dsns: list[str], pgdb: mother.Database) -> Iterator[mother.Database]:
    """The database "second" reached through a proxy that drops the reply to its PREPARE
    TRANSACTION and cuts the connection (the server prepared; the client never hears)."""
    params = conninfo_to_dict(pg_dsns[1])
    with RoundTripProxy(params.get("host") or "127.0.0.1", int(params.get("port") or 5432),
                        cut_after=b"PREPARE TRANSACTION") as proxy:
        params.update(host=proxy.host, port=str(proxy.port))
        database = mother.init_mother(dsn=make_conninfo(**params), name="second", pool_min=1,
                                      pool_max=4, pool_timeout=5, recover_interval=None)
        tutorial.create(database)
        yield database


@pytest.mark.parametrize("connected", [False, True], ids=["in-turn", "at-once"])
def test_a_prepare_whose_reply_is_lost(pgdb, cut_prepare, pg_dsns: list[str], moves,
                                       connected: bool) -> None:
    writer("one", connected=connected), writer("two", "second", connected=connected)
    with pytest.raises(psycopg.OperationalError):  # the driver's error, as it came
        transaction.commit()
    assert moves() == PATHS["the reply to a PREPARE is lost: in doubt, then rolled back"]
    assert stars((pgdb, cut_prepare)) == (0, 0)
    assert prepared(pg_dsns[0]) == prepared(pg_dsns[1]) == []
