"""The <mother:database> directive and get_session() outside the publisher (scripts, zconsole)."""

from __future__ import annotations

from typing import Any

import pytest
import transaction
from zope.component import getUtility, queryUtility
from zope.configuration import xmlconfig
from zope.configuration.config import (
    ConfigurationConflictError,
    ConfigurationExecutionError,
)
from zope.configuration.exceptions import ConfigurationError

import mother
from mother.zope import get_database, get_session
from mother.zope.interfaces import IMotherDatabase
from tests.support.zopeapp.checks import rows

ZCML = """
<configure xmlns="http://namespaces.zope.org/zope"
           xmlns:mother="http://namespaces.zope.org/mother">
  <include package="mother.zope" file="meta.zcml" />
  {body}
</configure>
"""


def test_site_zcml_directives_registered_named_utilities(zope_instance: dict[str, Any]) -> None:
    default = getUtility(IMotherDatabase, name="default")
    assert isinstance(default, mother.Database)
    assert default.settings.dsn == zope_instance["pg"]
    assert (default.settings.pool_min, default.settings.pool_max) == (1, 5)
    assert default.settings.twophase is True
    lite = getUtility(IMotherDatabase, name="lite")
    assert lite.dialect.name == "sqlite"
    assert get_database("lite") is lite


def test_directive_configures_a_new_database(zope_tables: dict[str, Any], tmp_path: Any) -> None:
    dsn = f"sqlite:///{tmp_path / 'extra.db'}"
    xmlconfig.string(ZCML.format(
        body=f'<mother:database name="extra" dsn="{dsn}" pool_min="1" pool_max="2" '
             'twophase="off" />'))
    database = getUtility(IMotherDatabase, name="extra")
    assert mother.get_database("extra") is database
    assert database.settings.pool_max == 2 and database.settings.twophase is False
    transaction.begin()
    session = get_session("extra")
    session.oc_query("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    session.oc_query("INSERT INTO notes (body) VALUES (:b)", {"b": "from a script"})
    assert get_session("extra") is session
    transaction.commit()
    assert session.closed
    assert rows(dsn) == ["from a script"]


def test_get_session_in_a_script_aborts_with_the_transaction(zope_tables: dict[str, Any]) -> None:
    transaction.begin()
    get_session().oc_query("INSERT INTO notes (body) VALUES ('aborted')")
    transaction.abort()
    transaction.begin()
    get_session().oc_query("INSERT INTO notes (body) VALUES ('committed')")
    transaction.commit()
    assert rows(zope_tables["pg"]) == ["committed"]


def test_registered_database_gives_legacy_records_the_transaction_session(
        zope_tables: dict[str, Any]) -> None:
    transaction.begin()
    note = mother.getMotherObj("notes", {"body": "legacy"}, mother.MO_SAVE)
    assert note.session is get_session()
    transaction.abort()
    assert rows(zope_tables["pg"]) == []


def test_directive_refuses_a_bad_setting_with_its_name() -> None:
    with pytest.raises(ConfigurationError, match="pool_max"):
        xmlconfig.string(ZCML.format(
            body='<mother:database name="bad" dsn="sqlite://" pool_min="3" pool_max="2" />'))
    assert queryUtility(IMotherDatabase, name="bad") is None


def test_directive_refuses_a_dsn_no_dialect_reads_while_the_zcml_is_read() -> None:
    with pytest.raises(ConfigurationError) as caught:
        xmlconfig.string(ZCML.format(body='<mother:database name="baddsn" dsn="mysql://x" />'))
    assert not isinstance(caught.value, ConfigurationExecutionError)  # not when run
    assert "<mother:database name='baddsn'>: setting 'dsn' = 'mysql://x'" in str(caught.value)
    assert isinstance(caught.value.__cause__, mother.ConfigError)
    assert queryUtility(IMotherDatabase, name="baddsn") is None


def test_directive_takes_the_settings_of_many_processes(tmp_path: Any) -> None:
    dsn = f"sqlite:///{tmp_path / 'fleet.db'}"
    xmlconfig.string(ZCML.format(
        body=f'<mother:database name="fleet" dsn="{dsn}" recover_interval="off" '
             'recover_min_age="10" schema_check="30" />'))
    settings = getUtility(IMotherDatabase, name="fleet").settings
    assert (settings.recover_interval, settings.recover_min_age, settings.schema_check) == \
        (None, 10.0, 30.0)
    with pytest.raises(ConfigurationError, match="schema_check"):
        xmlconfig.string(ZCML.format(
            body='<mother:database name="fleet2" dsn="sqlite://" schema_check="often" />'))


def test_directive_takes_the_pooler_setting() -> None:
    xmlconfig.string(ZCML.format(body='<mother:database name="pooled" dsn="sqlite://" '
                                      'pooler="pgbouncer-transaction" />'))
    assert getUtility(IMotherDatabase, name="pooled").settings.pooler == "pgbouncer-transaction"
    with pytest.raises(ConfigurationError, match="'pooler' = 'odyssey'"):
        xmlconfig.string(ZCML.format(
            body='<mother:database name="badpool" dsn="sqlite://" pooler="odyssey" />'))


def test_directive_requires_a_dsn() -> None:
    with pytest.raises(ConfigurationError, match="dsn"):
        xmlconfig.string(ZCML.format(body='<mother:database name="nodsn" />'))


def test_two_directives_with_one_name_conflict() -> None:
    with pytest.raises(ConfigurationConflictError):
        xmlconfig.string(ZCML.format(body=(
            '<mother:database name="twice" dsn="sqlite://" />'
            '<mother:database name="twice" dsn="sqlite://" />')))
    assert queryUtility(IMotherDatabase, name="twice") is None


def test_retryable_converts_a_real_locked_database_error(zope_tables: dict[str, Any],
                                                         tmp_path: Any) -> None:
    """``retryable`` turns SQLite's real "database is locked" into a retryable error
    (the instance configures an SQLite database, whose dialect knows the error)."""
    import sqlite3

    from transaction.interfaces import TransientError

    from mother.zope import retryable
    from mother.zope.retry import TransientDatabaseError

    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")

    @retryable
    def write() -> None:
        other = sqlite3.connect(path, timeout=0.01, isolation_level=None)
        try:
            other.execute("INSERT INTO t VALUES (1)")
        finally:
            other.close()

    try:
        with pytest.raises(TransientDatabaseError) as caught:
            write()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert isinstance(caught.value, TransientError)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert "database is locked" in str(caught.value.__cause__)


def test_get_session_of_a_database_configured_elsewhere_retries_commit_errors_only(
        zope_tables: dict[str, Any], tmp_path: Any) -> None:
    """A database configured by ``init_mother`` whose session ``get_session`` hands out:
    SQLite's real "database is locked" in a statement is its own error (``retryable`` is
    for that), at commit (the flush in ``tpc_begin``) it is a ``TransientDatabaseError``.
    Through the database's translators: nothing is patched onto the data manager."""
    import sqlite3

    from transaction.interfaces import TransientError

    from mother.zope.retry import TransientDatabaseError

    path = tmp_path / "plain.db"
    database = mother.init_mother(name="plain", dsn=f"sqlite:///{path}", pool_min=1,
                                  busy_timeout=0.05, persistent_one=False)
    with mother.MotherSession(database=database) as session:
        session.oc_query("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        transaction.begin()
        session = get_session("plain")
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            session.oc_query("INSERT INTO notes (body) VALUES ('now')")
        transaction.abort()
        transaction.begin()
        session = get_session("plain")
        session.persist(mother.getMotherObj("notes", {"body": "at commit"}, session=session))
        manager = session.manager
        with pytest.raises(TransientDatabaseError) as caught:
            transaction.commit()
        assert isinstance(caught.value, TransientError)
        assert "database is locked" in str(caught.value.__cause__)
        assert not {"tpc_begin", "commit", "tpc_vote"} & set(vars(manager))
    finally:
        transaction.abort()
        holder.execute("ROLLBACK")
        holder.close()
        mother.get_database("plain").close()
