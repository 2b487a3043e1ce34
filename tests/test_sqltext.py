"""A MoFilter on a raw query: placed at ``{filter}``, appended to the top-level WHERE, or
refused with RawFilterError naming the query, for every shape, run on both databases."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import mother
from mother import MO_SAVE, MoFilter, MotherError, MotherSession, RawFilterError
from mother.session import Session
from mother.sqltext import add_condition, tokens
from tests.support.databases import count


@pytest.fixture
def s(db: mother.Database) -> Iterator[Session]:
    """A session over stars sun (mass 1), vega (2), sirius (2), rigel (3), each with a
    planet named after it."""
    with MotherSession() as session:
        for number, (name, mass) in enumerate(
                [("sun", 1), ("vega", 2), ("sirius", 2), ("rigel", 3)], 1):
            mother.getMotherObj("stars", {"star_id": number, "star_name": name,
                                          "star_mass": mass}, MO_SAVE, session)
            mother.getMotherObj("planets", {"star_id": number, "planet_name": f"{name} b"},
                                MO_SAVE, session)
        yield session


def ph(session: Session, name: str) -> str:
    return session.database.dialect.placeholder(name)


def names(rows: list[dict[str, object]]) -> list[object]:
    return [row["star_name"] for row in rows]


NOT_SUN = MoFilter({"star_mass": 2})  # vega and sirius


# -- appended to the statement ---------------------------------------------------------------
def test_without_where_a_where_is_added(s: Session) -> None:
    assert sorted(names(s.mr_query("SELECT star_name FROM stars", NOT_SUN))) == [
        "sirius", "vega"]


def test_an_or_in_the_where_stays_apart(s: Session) -> None:
    rows = s.mr_query("SELECT star_name FROM stars WHERE star_name = 'sun' OR star_mass = 2",
                      MoFilter({"star_name": "vega"}))
    assert names(rows) == ["vega"]  # not "sun OR (mass 2 AND vega)"


def test_a_subquery_with_where_keeps_its_where(s: Session) -> None:
    sql = ("SELECT star_name FROM stars WHERE star_id IN "
           "(SELECT star_id FROM planets WHERE planet_name <> 'rigel b')")
    assert sorted(names(s.mr_query(sql, NOT_SUN))) == ["sirius", "vega"]
    no_where = "SELECT star_name FROM stars JOIN (SELECT star_id AS i FROM planets " \
               "WHERE planet_name = 'vega b') p ON p.i = stars.star_id"
    assert names(s.mr_query(no_where, MoFilter({"stars.star_mass": 2}))) == ["vega"]


def test_the_word_where_in_strings_identifiers_and_comments_is_no_clause(s: Session) -> None:
    quote = s.database.dialect.quote
    queries = [
        "SELECT star_name, 'no WHERE here' AS note FROM stars",
        "SELECT star_name, 'it''s WHERE ORDER BY' AS note FROM stars",
        f"SELECT star_name AS {quote('where')} , star_name FROM stars",
        "SELECT star_name FROM stars /* WHERE star_mass = 1 ORDER BY x */",
        "SELECT star_name FROM stars -- WHERE star_mass = 1 ORDER BY x",
        "SELECT star_name FROM stars -- a trailing comment would swallow an appended filter\n",
        "SELECT star_name FROM stars;",
        "SELECT star_name FROM stars ; -- done",
    ]
    for sql in queries:
        rows = s.mr_query(sql, NOT_SUN)
        assert sorted(names(rows)) == ["sirius", "vega"], sql


def test_a_delete_with_a_trailing_comment_deletes_only_the_filtered_rows(
        s: Session, db: mother.Database) -> None:
    s.oc_query("DELETE FROM planets -- every planet?", MoFilter({"planet_name": "sun b"}))
    s.commit()
    assert count(db, "planets") == 3


def test_update_and_delete(s: Session, db: mother.Database) -> None:
    s.oc_query("UPDATE stars SET star_age = 7", NOT_SUN)
    s.oc_query("DELETE FROM planets WHERE planet_name LIKE 's%%' OR planet_name LIKE 'v%%'"
               if s.database.dialect.name == "postgresql" else
               "DELETE FROM planets WHERE planet_name LIKE 's%' OR planet_name LIKE 'v%'",
               MoFilter({"planet_name": "vega b"}))
    s.commit()
    assert count(db, "stars", "WHERE star_age = 7") == 2
    assert count(db, "planets") == 3


# -- at the marker ----------------------------------------------------------------------------
def test_the_marker_places_the_filter_before_order_group_limit(s: Session) -> None:
    assert names(s.mr_query("SELECT star_name FROM stars WHERE {filter} ORDER BY star_name",
                            NOT_SUN)) == ["sirius", "vega"]
    grouped = s.mr_query("SELECT star_mass, COUNT(*) AS n FROM stars WHERE {filter} "
                         "GROUP BY star_mass HAVING COUNT(*) > 1", MoFilter({"star_mass": 2}))
    assert grouped == [{"star_mass": 2, "n": 2}]
    limited = s.mr_query(f"SELECT star_name FROM stars WHERE star_mass > {ph(s, 'm')} "
                         "AND {filter} ORDER BY star_name DESC LIMIT 1",
                         MoFilter({"star_mass": 2}, store={"m": 1}))
    assert names(limited) == ["vega"]


def test_the_marker_in_a_subquery_and_with_a_union(s: Session) -> None:
    sql = ("SELECT star_name FROM stars WHERE star_id IN "
           "(SELECT star_id FROM planets WHERE {filter}) "
           "UNION SELECT star_name FROM stars WHERE star_name = 'sun' ORDER BY star_name")
    assert names(s.mr_query(sql, MoFilter({"planets.planet_name": "rigel b"}))) == [
        "rigel", "sun"]


def test_a_marker_in_a_string_or_comment_is_text(s: Session) -> None:
    rows = s.mr_query("SELECT star_name, '{filter}' AS note FROM stars "
                      "WHERE /* {filter} */ {filter} ORDER BY star_name", NOT_SUN)
    assert rows == [{"star_name": "sirius", "note": "{filter}"},
                    {"star_name": "vega", "note": "{filter}"}]


def test_an_empty_filter_at_the_marker_keeps_every_row(s: Session) -> None:
    assert len(s.mr_query("SELECT star_name FROM stars WHERE {filter} ORDER BY star_name",
                          MoFilter())) == 4


def test_text_conditions_and_their_parameters_at_the_marker(s: Session) -> None:
    flt = MoFilter(f"star_mass = {ph(s, 'a')} OR star_mass = {ph(s, 'b')}",
                   store={"a": 1, "b": 3}).add_filter({"star_name": "rigel"})
    rows = s.mr_query("SELECT star_name FROM stars WHERE NOT {filter} ORDER BY star_name", flt)
    assert names(rows) == ["sirius", "sun", "vega"]  # NOT applies to the whole filter


# -- refused ------------------------------------------------------------------------------------
REFUSED = [
    ("SELECT star_name FROM stars ORDER BY star_name", "ORDER"),
    ("SELECT star_mass FROM stars GROUP BY star_mass", "GROUP"),
    ("SELECT star_name FROM stars WHERE star_mass > 1 LIMIT 2", "LIMIT"),
    ("SELECT star_name FROM stars LIMIT 2 OFFSET 1", "LIMIT"),
    ("SELECT star_name FROM stars UNION SELECT planet_name FROM planets", "UNION"),
    ("UPDATE stars SET star_age = 1 RETURNING star_id", "RETURNING"),
    ("INSERT INTO stars (star_name) VALUES ('x')", "INSERT"),
    ("INSERT INTO stars (star_name) SELECT planet_name FROM planets", "INSERT"),
    ("VALUES (1)", "VALUES"),
    ("CREATE TABLE x (a INTEGER)", "this is a CREATE"),
    ("EXPLAIN SELECT star_name FROM stars", "this is an EXPLAIN"),
    ("WITH v AS (VALUES (1)) INSERT INTO stars (star_id) SELECT * FROM v", "an INSERT"),
    ("SELECT 1; DELETE FROM stars", "several statements"),
    ("SELECT star_name FROM stars WHERE {filter} OR {filter}", "2 times"),
    ("SELECT 'unclosed FROM stars", "unclosed '"),
    ('SELECT "unclosed FROM stars', 'unclosed "'),
    ("SELECT star_name FROM stars /* unclosed", "unclosed comment"),
    ("SELECT (star_name FROM stars", "unclosed parenthesis"),
    ("SELECT star_name) FROM stars", "unbalanced"),
    ("", "statement without"),
]


@pytest.mark.parametrize(("sql", "why"), REFUSED)
def test_refused_before_anything_is_sent(s: Session, db: mother.Database, sql: str, why: str,
                                         caplog: pytest.LogCaptureFixture) -> None:
    s.commit()
    caplog.set_level(logging.DEBUG, logger="mother.sql")
    caplog.clear()
    with pytest.raises(RawFilterError, match=why) as info:
        s.mr_query(sql, MoFilter({"star_name": "sun"}))
    assert isinstance(info.value, MotherError) and isinstance(info.value, ValueError)
    assert info.value.sql == sql
    assert repr(" ".join(sql.split())) in str(info.value)  # the message names the query
    assert [r for r in caplog.records if r.name == "mother.sql"] == []
    assert count(db, "stars") == 4


def test_a_with_query_gets_the_filter_on_its_main_statement(s: Session) -> None:
    sql = ("WITH heavy AS (SELECT star_id FROM stars WHERE star_mass > 1) "
           "SELECT star_name FROM stars WHERE star_id IN (SELECT star_id FROM heavy)")
    assert sorted(names(s.mr_query(sql, MoFilter({"stars.star_mass": 2})))) == [
        "sirius", "vega"]


def test_a_raw_query_with_plain_parameters_is_not_read(s: Session) -> None:
    # no MoFilter: the text goes as written (ORDER BY and all)
    rows = s.mr_query(f"SELECT star_name FROM stars WHERE star_mass = {ph(s, 'm')} "
                      "ORDER BY star_name", {"m": 2})
    assert names(rows) == ["sirius", "vega"]


# -- the tokenizer, on its own -------------------------------------------------------------------
def test_tokens_know_literals_comments_and_depth() -> None:
    sql = ("SELECT $tag$ WHERE ) $tag$, E'it\\'s (', [x], \"a\"\"b\" FROM t "
           "/* /* nested */ WHERE */ WHERE (a) -- WHERE")
    found = [(t.kind, t.text, t.depth) for t in tokens(sql) if t.kind in ("word", "string")]
    assert found == [("word", "SELECT", 0), ("string", "$tag$ WHERE ) $tag$", 0),
                     ("string", "E'it\\'s ('", 0), ("word", "x", 1), ("word", "FROM", 0),
                     ("word", "t", 0), ("word", "WHERE", 0), ("word", "a", 1)]


def test_appended_text() -> None:
    assert add_condition("SELECT a FROM t", "x") == "SELECT a FROM t WHERE x"
    assert add_condition("SELECT a FROM t WHERE b OR c -- note\n", "x") == \
        "SELECT a FROM t WHERE (b OR c) AND x -- note\n"
    assert add_condition("DELETE FROM t;", "x") == "DELETE FROM t WHERE x;"
    assert add_condition("SELECT a FROM t WHERE {filter} LIMIT 1", "x") == \
        "SELECT a FROM t WHERE (x) LIMIT 1"
    with pytest.raises(RawFilterError, match="CURRENT OF"):
        add_condition("UPDATE t SET a = 1 WHERE CURRENT OF c", "x")
