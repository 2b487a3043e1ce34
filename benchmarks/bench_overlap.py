"""What sending writes ahead would save (run by hand; figures in docs/unitofwork.rst,
"Sending writes ahead, measured").

    python -m benchmarks.bench_overlap --dsn DSN [--n 3000]

The immediate unit's round trips on a bare libpq connection (``psycopg.pq``), in
pipeline mode: BEGIN and a SELECT, then the writes (an UPDATE and two INSERTs with
their keys) and the COMMIT. Between the SELECT and the COMMIT the client works for
WORK microseconds (a busy loop: the Python an application and dbmother run there).
Two ways, in turns (``timing.py``):

  together   the writes go with the COMMIT, after the work (what dbmother's deferred
             immediate writes do now: one round trip);
  ahead      the writes are sent before the work, their results left unread, and the
             COMMIT follows after it (the server runs the writes while the client works;
             still one wait).

The difference is the server's time that sending ahead hides behind the client's.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from psycopg import pq

from benchmarks.timing import create_scratch, drop_scratch, interleaved

SETUP = (b"CREATE TABLE stars (star_id int PRIMARY KEY, star_age int NOT NULL);"
         b"INSERT INTO stars VALUES (1, 0);"
         b"CREATE TABLE planets (planet_id serial PRIMARY KEY,"
         b" star_id int REFERENCES stars, planet_name text)")
SELECT = b"SELECT * FROM stars WHERE star_id = $1"
UPDATE = b"UPDATE stars SET star_age = star_age + 1 WHERE star_id = $1"
INSERT = b"INSERT INTO planets (star_id, planet_name) VALUES ($1, $2) RETURNING planet_id"


def _busy(microseconds: int) -> None:
    end = time.perf_counter_ns() + microseconds * 1000
    while time.perf_counter_ns() < end:
        pass


def _read(pgconn: pq.abc.PGconn) -> None:
    """Read the pipeline's results up to its sync; fail on any error."""
    while True:
        result = pgconn.get_result()
        if result is None:
            continue
        if result.status == pq.ExecStatus.PIPELINE_SYNC:
            return
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise RuntimeError(result.error_message.decode())


def _writes(pgconn: pq.abc.PGconn) -> None:
    pgconn.send_query_params(UPDATE, [b"1"])
    for _ in range(2):
        pgconn.send_query_params(INSERT, [b"1", b"p"])


def unit(pgconn: pq.abc.PGconn, work: int, ahead: bool) -> None:
    pgconn.enter_pipeline_mode()
    pgconn.send_query_params(b"BEGIN", None)
    pgconn.send_query_params(SELECT, [b"1"])
    pgconn.pipeline_sync()
    pgconn.flush()
    _read(pgconn)
    if ahead:
        _writes(pgconn)
        pgconn.send_flush_request()
        pgconn.flush()
    _busy(work)
    if not ahead:
        _writes(pgconn)
    pgconn.send_query_params(b"COMMIT", None)
    pgconn.pipeline_sync()
    pgconn.flush()
    _read(pgconn)
    pgconn.exit_pipeline_mode()


def _contender(pgconn: pq.abc.PGconn, work: int, ahead: bool) -> Callable[[int], None]:
    return lambda _index: unit(pgconn, work, ahead)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=os.environ.get(
        "MOTHER_TEST_PG_DSN", "host=127.0.0.1 port=54329 user=postgres dbname=postgres"))
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    name, dsn = create_scratch(args.dsn)
    pgconn = pq.PGconn.connect(dsn.encode())
    try:
        if pgconn.status != pq.ConnStatus.OK:
            raise SystemExit(pgconn.error_message.decode())
        if pgconn.exec_(SETUP).status != pq.ExecStatus.COMMAND_OK:
            raise SystemExit(pgconn.error_message.decode())
        print(f"median elapsed per unit, {args.n} in turns; libpq {pq.version()}")
        print("work us   together us   ahead us   saved us")
        for work in (0, 50, 100, 200):
            times = interleaved({"together": _contender(pgconn, work, False),
                                 "ahead": _contender(pgconn, work, True)}, args.n)
            print(f"{work:7d}   {times['together']:11.1f}   {times['ahead']:8.1f}   "
                  f"{times['together'] - times['ahead']:8.1f}")
    finally:
        pgconn.finish()
        drop_scratch(args.dsn, name)


if __name__ == "__main__":
    main()
