"""mother.otel: spans of round trips and transaction phases, following OpenTelemetry's
database conventions, parented under the caller's span (the SDK's in-memory exporter)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import transaction
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import mother
import mother.otel
import mother.tm
from mother import MotherError, events, tutorial


@pytest.fixture
def spans():
    """An SDK tracer provider exporting to memory, instrumented for the test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    mother.otel.instrument(provider)
    yield provider, exporter
    mother.otel.uninstrument()
    assert events.listeners == ()


def test_importing_mother_does_not_import_opentelemetry():
    code = ("import sys, mother, mother.tm, mother.events; "
            "print([m for m in sys.modules if m.startswith('opentelemetry')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_a_span_per_round_trip_under_the_callers_span_without_values(db, spans):
    provider, exporter = spans
    mark = db.dialect.placeholder("name")
    with provider.get_tracer("test").start_as_current_span("request") as request, \
            mother.MotherSession("traced") as session:
        session.oc_query(f"INSERT INTO stars (star_name, star_age) VALUES ({mark}, 7)",
                         {"name": "Secret Star"})
        session.oc_query("UPDATE stars SET star_name = 'Hidden Name' WHERE star_age = 7")
    finished = exporter.get_finished_spans()
    mine = [s for s in finished if s.attributes.get("mother.session") == "traced"]
    assert mine and all(s.kind == SpanKind.CLIENT for s in mine)
    assert all(s.parent.span_id == request.get_span_context().span_id for s in mine)
    assert all(s.context.trace_id == request.get_span_context().trace_id for s in mine)
    for span in mine:
        assert span.attributes["db.system.name"] == db.dialect.name
        assert span.attributes["db.namespace"] == db.dialect.location()["db.namespace"]
        text = span.attributes["db.query.text"]
        assert "Secret Star" not in text and "Hidden Name" not in text
        assert span.start_time <= span.end_time
    (insert,) = [s for s in mine if "INSERT INTO stars" in s.attributes["db.query.text"]]
    (update,) = [s for s in mine if "UPDATE stars" in s.attributes["db.query.text"]]
    assert "7)" in insert.attributes["db.query.text"]  # parameterized: the text as written
    assert "star_name = ? WHERE star_age = ?" in update.attributes["db.query.text"]
    assert update.attributes["db.operation.name"] == "UPDATE"
    assert update.name == f"UPDATE {db.dialect.location()['db.namespace']}"
    assert update.attributes["db.response.returned_rows"] == 1
    if db.dialect.name == "postgresql":  # BEGIN rides with the INSERT: a batch of 3
        assert insert.attributes["db.operation.name"] == "BATCH"
        assert insert.attributes["db.operation.batch.size"] == 3
        assert insert.attributes["db.query.text"].startswith("BEGIN; SET application_name = ?")
        assert insert.attributes["server.address"] == "127.0.0.1"
    else:
        assert insert.attributes["db.operation.name"] == "INSERT"
    names = [e.name for e in request.events]
    assert names[:1] == ["mother session opened"] and "mother session ended" in names


def test_a_failed_statement_is_an_error_span(db, spans):
    provider, exporter = spans
    with provider.get_tracer("test").start_as_current_span("request"):
        session = mother.MotherSession("failing")
        with pytest.raises(Exception, match="no_such_table"):
            session.oc_query("SELECT * FROM no_such_table")
        session.close()
    (failed,) = [s for s in exporter.get_finished_spans() if s.status.status_code ==
                 StatusCode.ERROR]
    assert failed.attributes["db.query.text"].endswith("SELECT * FROM no_such_table")
    if db.dialect.name == "postgresql":
        assert failed.attributes["error.type"] == "42P01"
        assert failed.attributes["db.response.status_code"] == "42P01"
    else:
        assert failed.attributes["error.type"] == "OperationalError"
    assert failed.events[0].name == "exception"


def test_two_phase_commit_spans_nest_round_trips_under_their_phases(pg_dsns, spans,
                                                                   clean_transaction):
    provider, exporter = spans
    for name, dsn in zip(("first", "second"), pg_dsns):
        tutorial.create(mother.init_mother(dsn=dsn, name=name, recover_interval=None))
    try:
        with provider.get_tracer("test").start_as_current_span("request") as request:
            for name in ("first", "second"):
                session = mother.MotherSession(f"on-{name}", database=name)
                mother.tm.join(session)
                session.oc_query("INSERT INTO stars (star_name) VALUES (%(n)s)", {"n": "x"})
            transaction.commit()
    finally:
        mother.close_all()
    finished = exporter.get_finished_spans()
    phases = [s for s in finished if s.name.startswith("mother ")]
    assert [(s.name, s.attributes.get("mother.database")) for s in phases] == [
        ("mother tpc_begin", "first"), ("mother tpc_begin", "second"),
        ("mother commit", "first"), ("mother commit", "second"),
        ("mother tpc_vote", "first"), ("mother tpc_vote", "second"),
        ("mother decision", None), ("mother tpc_finish", "first"),
        ("mother tpc_finish", "second")]
    root = request.get_span_context().span_id
    assert all(s.parent.span_id == root and s.kind == SpanKind.INTERNAL for s in phases)
    by_id = {s.context.span_id: s for s in finished}
    prepares = [s for s in finished
                if "PREPARE TRANSACTION" in s.attributes.get("db.query.text", "")]
    assert len(prepares) == 2
    # the first vote sends both PREPAREs at once: both are children of that phase
    assert {by_id[s.parent.span_id].name for s in prepares} == {"mother tpc_vote"}
    (decided,) = [s for s in finished if s.attributes.get("db.operation.name")
                  == "COMMIT PREPARED" and by_id[s.parent.span_id].name == "mother decision"]
    assert decided.attributes["db.query.text"] == "COMMIT PREPARED ?"  # no gid literal
    for span in phases:
        assert span.start_time <= span.end_time
    for span in finished:
        if span.parent is not None and span.parent.span_id in by_id:
            parent = by_id[span.parent.span_id]
            assert parent.start_time <= span.start_time <= span.end_time <= parent.end_time


def test_instrumenting_twice_is_refused(spans):
    with pytest.raises(MotherError, match="already instrumented"):
        mother.otel.instrument()


def test_query_text_replaces_literals_only_without_parameters():
    plain = events.Statement("SELECT 'it''s', 42, x1, \"t2\" FROM t WHERE a = 3.5", None, None)
    assert mother.otel.query_text(plain) == "SELECT ?, ?, x1, \"t2\" FROM t WHERE a = ?"
    bound = events.Statement("SELECT %(a)s, 42", {"a": 1}, None)
    assert mother.otel.query_text(bound) == "SELECT %(a)s, 42"
    assert mother.otel.operation("  rollback to savepoint x") == "ROLLBACK TO SAVEPOINT"
