"""Injection strings at every entry point: names are checked against the schema before any
SQL runs, values are bound, and nothing stored is lost."""

from __future__ import annotations

import logging

import pytest

from mother import (
    MO_LOAD,
    MO_NOA,
    MO_SAVE,
    DbMother,
    MotherError,
    MotherSession,
    UnknownFieldError,
    UnknownTableError,
    getMotherBuilder,
    getMotherObj,
)
from mother.database import Database
from tests.support.classes import ClsStars
from tests.support.databases import count
from tests.support.hostile import EVIL


@pytest.fixture
def stored(db: Database) -> Database:
    for name in ("Sun", "Vega", "Sirius"):
        ClsStars({"star_name": name, "star_mass": 1}, MO_SAVE)
    return db


@pytest.fixture
def sql_seen(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="mother.sql")
    return lambda: [r for r in caplog.records if r.name == "mother.sql"]


def intact(db: Database) -> None:
    db.refresh_schema()
    assert {"stars", "planets", "moons_info", "lifeforms", "civilizations"} <= set(db.schema.tables)
    assert count(db, "stars") == 3


@pytest.mark.parametrize("evil", EVIL)
def test_table_names(stored: Database, evil: str, sql_seen) -> None:
    class Evil(DbMother):
        table_name = evil

    with MotherSession() as session:
        with pytest.raises(UnknownTableError):
            getMotherBuilder(evil)
        with pytest.raises(UnknownTableError):
            getMotherObj(evil, {"star_name": "x"}, MO_SAVE, session)
        with pytest.raises(UnknownTableError):
            Evil({"star_name": "x"}, MO_SAVE, session=session)
        with pytest.raises(UnknownTableError):
            session.get(evil, 1)
    assert sql_seen() == []
    intact(stored)


@pytest.mark.parametrize("evil", EVIL)
def test_column_names(stored: Database, evil: str, sql_seen) -> None:
    with MotherSession() as session:
        calls = [
            lambda: ClsStars({evil: 1}, MO_SAVE, session=session),  # store
            lambda: ClsStars({evil: "Sun"}, MO_LOAD, session=session),  # filter
            lambda: ClsStars({"star_name": "Sun"}, session=session).load([evil]),  # fields
            lambda: ClsStars({"star_name": "Sun"}, session=session).getFields([evil]),
            lambda: ClsStars({"star_name": "Sun"}, session=session).getField(evil),
            lambda: ClsStars({"star_name": "Sun"}, session=session).setField(evil, 1),
            lambda: ClsStars({"star_name": "Sun"}, session=session).setFields({evil: 1}),
            lambda: ClsStars({"star_name": "Sun"}, session=session).update({evil: 1}),
            lambda: ClsStars.load_rows(session, {evil: 1}),  # filter dict
            lambda: ClsStars.load_rows(session, {}, fields=[evil]),  # fields
        ]
        if evil != "stars.star_name":  # a table-qualified column is a valid order
            calls.append(lambda: ClsStars.load_rows(session, {}, order=[evil]))
        if evil and evil != "stars.star_name":  # order="" means no order
            calls.append(lambda: ClsStars.load_rows(session, {}, order=evil))
        for call in calls:
            with pytest.raises(MotherError) as info:
                call()
            assert isinstance(info.value, (UnknownFieldError, UnknownTableError)) or \
                "order" in str(info.value)
    assert sql_seen() == []
    intact(stored)


def test_unknown_field_names_table_and_column(stored: Database) -> None:
    with pytest.raises(UnknownFieldError) as info:
        ClsStars({'x"; DROP TABLE stars; --': 1}, MO_NOA)
    assert info.value.table == "stars"
    assert info.value.field == 'x"; DROP TABLE stars; --'


@pytest.mark.parametrize("evil", [value for value in EVIL if "\x00" not in value])
def test_values_are_bound_and_stored_verbatim(stored: Database, evil: str) -> None:
    with MotherSession() as session:
        star = ClsStars({"star_name": evil, "star_mass": 2}, MO_SAVE, session=session)
        star_id = star.getField("star_id")
    with MotherSession() as session:
        loaded = ClsStars({"star_name": evil}, MO_LOAD, session=session)
        assert loaded.getField("star_id") == star_id
        loaded.update({"star_age": 1})
        assert ClsStars.load_rows(session, {"star_name": evil}, fields=["star_name"]) == [
            {"star_name": evil}]
        assert session.ov_query(
            f"SELECT COUNT(*) AS n FROM stars WHERE star_name = "
            f"{stored.dialect.placeholder('v')}", {"v": evil}) == 1
    assert count(stored, "stars") == 4
    assert count(stored, "stars", "WHERE star_age = 1") == 1
