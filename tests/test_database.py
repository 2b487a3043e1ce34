"""Named databases: several at once, replacing one closes its pool, close_all()."""

from __future__ import annotations

from pathlib import Path

import pytest

from mother import (
    ConfigError,
    MotherPoolStatus,
    MotherSession,
    PoolTimeoutError,
    close_all,
    databases,
    get_database,
    init_mother,
    tutorial,
)
from mother.executor import shared
from tests.support.databases import count, make_dsn


@pytest.fixture(autouse=True)
def _clean():
    yield
    close_all()


def test_several_named_databases(kind: str, pg_dsns: list[str], tmp_path: Path) -> None:
    first = init_mother(dsn=make_dsn(kind, pg_dsns, tmp_path, 0), pool_min=1)
    second = init_mother(dsn=make_dsn(kind, pg_dsns, tmp_path, 1), name="second", pool_min=1)
    tutorial.create(first)
    tutorial.create(second)
    assert {d.name for d in databases()} == {"default", "second"}
    with MotherSession(database="second") as s:
        s.oc_query("INSERT INTO stars (star_name) VALUES ('only in second')")
    with MotherSession() as s:
        assert s.ov_query("SELECT COUNT(*) AS n FROM stars") == 0
    assert count(second, "stars") == 1
    assert get_database("second") is second
    assert MotherSession(database=second).database is second


def test_replacing_a_database_closes_its_pool(kind: str, dsn: str) -> None:
    old = init_mother(dsn=dsn, pool_min=1)
    s = MotherSession()
    s.ov_query("SELECT 1 AS one")
    s.endSession()
    pool = old.pool
    new = init_mother(dsn=dsn, pool_min=1)
    assert new is not old and get_database() is new
    assert old._pool is None
    with pytest.raises(PoolTimeoutError, match="closed"):
        pool.getconn()
    with MotherSession() as s:
        assert s.ov_query("SELECT 2 AS two") == 2


def test_close_all_forgets_every_database(kind: str, dsn: str) -> None:
    database = init_mother(dsn=dsn, pool_min=1)
    database.pool  # noqa: B018 - opens the pool
    pool = database._pool
    close_all()
    assert databases() == []
    with pytest.raises(ConfigError):
        get_database()
    with pytest.raises(PoolTimeoutError):
        pool.getconn()


def test_pool_status_before_use_opens_the_pool(kind: str, dsn: str) -> None:
    init_mother(dsn=dsn, pool_min=1, pool_max=3)
    status = MotherPoolStatus()
    assert status.maximum == 3 and status.minimum == 1 and status.in_use == 0


def test_twophase_detection(kind: str, dsn: str) -> None:
    database = init_mother(dsn=dsn, pool_min=1)
    assert database.twophase is (kind == "postgresql")


def test_sqlite_says_it_cannot_prepare_without_connecting(tmp_path: Path) -> None:
    database = init_mother(dsn=f"sqlite:///{tmp_path}/x.db")
    assert database.twophase is False
    assert database._pool is None and not (tmp_path / "x.db").exists()


def test_twophase_forced_on_sqlite_is_a_config_error(tmp_path: Path) -> None:
    database = init_mother(dsn=f"sqlite:///{tmp_path}/x.db", twophase=True)
    with pytest.raises(ConfigError) as info:
        database.twophase  # noqa: B018
    assert info.value.key == "twophase"


def test_twophase_off(dsn: str) -> None:
    assert init_mother(dsn=dsn, twophase=False).twophase is False


def test_shared_connection_off(dsn: str) -> None:
    database = init_mother(dsn=dsn, persistent_one=False)
    with pytest.raises(ConfigError) as info:
        shared(database)
    assert info.value.key == "persistent_one"


def test_unreachable_database_fails_clearly() -> None:
    database = init_mother(dsn="host=127.0.0.1 port=1 user=nobody dbname=none connect_timeout=1",
                           pool_min=0, pool_max=1, pool_timeout=1)
    with pytest.raises(PoolTimeoutError):
        MotherSession().ov_query("SELECT 1")
    assert database.dialect.name == "postgresql"
