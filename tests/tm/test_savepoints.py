"""transaction.savepoint() -> SAVEPOINT, objects restored with the rows (SQLite too)."""

from __future__ import annotations

import pytest
import transaction

import mother
from mother import MO_SAVE, MotherSession
from mother.tm import join
from tests.support.classes import ClsStars
from tests.support.databases import count

# the thread's transaction is aborted before and after every test (conftest.py)
pytestmark = pytest.mark.usefixtures("clean_transaction")


def test_savepoint_rollback_undoes_rows_and_objects(db: mother.Database) -> None:
    s = MotherSession()
    join(s)
    sun = ClsStars({"star_name": "Sun"}, MO_SAVE, session=s)
    sp = transaction.savepoint()
    sun.setField("star_name", "Nova")
    ClsStars({"star_name": "Vega"}, MO_SAVE, session=s)
    sp.rollback()
    assert sun.getField("star_name") == "Sun"
    assert s.ov_query("SELECT COUNT(*) FROM stars") == 1
    transaction.commit()
    assert count(db, "stars") == 1 and count(db, "stars", "WHERE star_name = 'Sun'") == 1


def test_a_savepoint_can_be_rolled_back_twice(db: mother.Database) -> None:
    s = MotherSession()
    join(s)
    sp = transaction.savepoint()
    ClsStars({"star_name": "one"}, MO_SAVE, session=s)
    sp.rollback()
    ClsStars({"star_name": "two"}, MO_SAVE, session=s)
    sp.rollback()
    ClsStars({"star_name": "three"}, MO_SAVE, session=s)
    transaction.commit()
    assert count(db, "stars") == 1 and count(db, "stars", "WHERE star_name = 'three'") == 1


def test_rolling_back_an_outer_savepoint_undoes_the_inner_ones(db: mother.Database) -> None:
    s = MotherSession()
    join(s)
    sun = ClsStars({"star_name": "Sun"}, MO_SAVE, session=s)
    outer = transaction.savepoint()
    sun.setField("star_name", "A")
    s.flush()
    transaction.savepoint()
    sun.setField("star_name", "B")
    ClsStars({"star_name": "Vega"}, MO_SAVE, session=s)
    outer.rollback()
    assert sun.getField("star_name") == "Sun"
    transaction.commit()
    assert count(db, "stars") == 1 and count(db, "stars", "WHERE star_name = 'Sun'") == 1


def test_a_kept_savepoint_commits_its_work(db: mother.Database) -> None:
    s = MotherSession()
    join(s)
    transaction.savepoint()
    ClsStars({"star_name": "kept"}, MO_SAVE, session=s)
    transaction.commit()
    assert count(db, "stars") == 1


def test_a_savepoint_alone_does_not_make_a_session_a_writer(db: mother.Database) -> None:
    s = MotherSession()
    dm = join(s)
    s.mr_query("SELECT * FROM stars")
    transaction.savepoint()
    assert not s.wrote
    transaction.commit()
    assert dm.mode == "read-only"
