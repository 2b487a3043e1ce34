"""Test views. ``ATTEMPTS`` counts publisher attempts per view; ``FAILURES`` records IPubFailure."""

from __future__ import annotations

from typing import Any

import psycopg
import transaction

import mother
from mother.zope import get_session

ATTEMPTS: dict[str, int] = {}
FAILURES: list[dict[str, Any]] = []
#: DSN of the PostgreSQL test database, for the out-of-band writer
SETTINGS: dict[str, str] = {}


def record_failure(event: Any) -> None:
    error = event.exc_info[1]
    FAILURES.append({"error": error, "cause": error.__cause__, "retry": event.retry})


def _interfere(sql: str) -> None:
    """Commit a change from another connection, outside the request's transaction."""
    with psycopg.connect(SETTINGS["pg"], autocommit=True) as conn:
        conn.execute(sql)


def _count(view: str) -> int:
    ATTEMPTS[view] = ATTEMPTS.get(view, 0) + 1
    return ATTEMPTS[view]


class Views:
    def __init__(self, context: Any, request: Any) -> None:
        self.context = context
        self.request = request

    def _session(self) -> mother.Session:
        return get_session(self.request.form.get("db", "default"))

    def insert(self) -> str:
        """Insert a note in the request's session; the publisher commits."""
        session = self._session()
        session.oc_query(f"INSERT INTO notes (body) VALUES ({_ph(session, 'b')})",
                         {"b": self.request.form["body"]})
        assert get_session(self.request.form.get("db", "default")) is session
        return f"inserted by {session.name}"

    def insert_fail(self) -> str:
        """Insert, then fail: the publisher aborts."""
        self.insert()
        raise ValueError("the view failed after writing")

    def serial_statement(self) -> str:
        """A real SQLSTATE 40001 raised by a statement (REPEATABLE READ), first attempt only."""
        attempt = _count("serial_statement")
        session = get_session()
        before = session.ov_query("SELECT n FROM counters WHERE id = 1")
        if attempt == 1:
            _interfere("UPDATE counters SET n = n + 100 WHERE id = 1")
        session.oc_query("UPDATE counters SET n = n + 1 WHERE id = 1")
        return f"attempt {attempt} read {before}"

    def serial_flush(self) -> str:
        """A real SQLSTATE 40001 raised when the publisher commits (flush of a changed record)."""
        attempt = _count("serial_flush")
        session = get_session()
        counter = mother.getMotherObj("counters", {"id": 2}, mother.MO_LOAD, session)
        if attempt == 1:
            _interfere("UPDATE counters SET n = n + 100 WHERE id = 2")
        counter.setField("n", counter.getField("n") + 1)
        return f"attempt {attempt}"

    def both(self) -> str:
        """Change the ZODB and PostgreSQL; ``fail`` makes one side fail while committing."""
        attempt = _count("both")
        fail = self.request.form.get("fail", "")
        app = self.context
        app.mother_box["hits"] = app.mother_box.get("hits", 0) + 1
        session = get_session()
        if fail == "postgresql":  # violates a deferred foreign key: PREPARE TRANSACTION fails
            session.oc_query("INSERT INTO guarded (ref, body) VALUES (-1, %(b)s)",
                             {"b": self.request.form["body"]})
        else:
            session.oc_query("INSERT INTO notes (body) VALUES (%(b)s)",
                             {"b": self.request.form["body"]})
        if fail == "zodb":  # another connection changes the same object: ConflictError
            manager = transaction.TransactionManager()
            other = app._p_jar.db().open(transaction_manager=manager)
            try:
                other.root()["Application"].mother_box["hits"] = 1000
                manager.commit()
            finally:
                other.close()
        return f"attempt {attempt}"

    def via_connection(self) -> str:
        """Use the ZMI connection ``path`` as restricted code does ("Use Database Methods")."""
        from AccessControl.ZopeGuards import guarded_getattr

        connection = self.context.unrestrictedTraverse(self.request.form["path"])
        session = guarded_getattr(connection, "script_session")()
        guarded_getattr(session, "oc_query")("INSERT INTO notes (body) VALUES (%(b)s)",
                                             {"b": self.request.form["body"]})
        return f"inserted by {session.getName()}"

    def zsql_mixed(self) -> str:
        """A Z SQL Method and get_session() write in one request; ``fail`` raises after."""
        connection = self.context.unrestrictedTraverse(self.request.form["path"])
        self.context.add_note(body="zsql")
        session = get_session(connection.database_name)
        session.oc_query(f"INSERT INTO notes (body) VALUES ({_ph(session, 'b')})", {"b": "python"})
        if self.request.form.get("fail"):
            raise ValueError("the view failed after writing")
        return ", ".join(row.body for row in self.context.notes())

    def zsql_serial(self) -> str:
        """Z SQL Methods meet a real SQLSTATE 40001 on the first attempt (REPEATABLE READ)."""
        attempt = _count("zsql_serial")
        prefix = self.request.form.get("prefix", "")
        names = {name: f"{prefix}_{name}" if prefix else name
                 for name in ("read_counter", "bump_counter")}
        before = getattr(self.context, names["read_counter"])()[0].n
        if attempt == 1:
            _interfere("UPDATE counters SET n = n + 100 WHERE id = 1")
        getattr(self.context, names["bump_counter"])()
        return f"attempt {attempt} read {before}"


def _ph(session: mother.Session, name: str) -> str:
    return session.database.dialect.placeholder(name)
