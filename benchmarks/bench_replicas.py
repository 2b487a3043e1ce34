"""Benchmark choosing a replica per read-only session (run by hand; figures for docs/).

Contenders, in turns in the same run (``timing.interleaved``), on the test server and a
streaming replica of it (tools/pgreplicas.py makes and starts it, and stops it at the end):

  open, primary       MotherSession(readonly=True) and close() on a database without
                      replicas: no connection taken, the session's own cost
  open, replica       the same on a database with the replica: the choice of the replica
  open, after=        the same with after= a position the replica has replayed
  open, checking      the same with replica_check near 0: every choice asks the primary and
                      the replica (the cost one session per replica_check pays)
  read, primary       a read-only session that loads one star and ends, on the primary
  read, replica       the same on the replica (its own pool)

Usage:
  MOTHER_TEST_PG_DSN="host=127.0.0.1 port=54329 user=postgres dbname=postgres" \\
      .venv/bin/python -m benchmarks.bench_replicas [ROUNDS]
"""

from __future__ import annotations

import os
import sys
import time

import psycopg

import mother
from benchmarks.timing import create_scratch, drop_scratch, interleaved
from mother import MotherSession, tutorial
from tools import pgreplicas

#: sessions opened per timed call of the "open" contenders
OPENS = 20


def _on(dsn: str, name: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params["dbname"] = name
    return psycopg.conninfo.make_conninfo(**params)


def main(rounds: int) -> None:
    server = os.environ.get("MOTHER_TEST_PG_DSN") or pgreplicas.pgcluster.ensure()
    replica = pgreplicas.REPLICAS[0]
    pgreplicas.make(replica, server)
    pgreplicas.start(replica)
    name, dsn = create_scratch(server)
    try:
        primary = mother.init_mother(dsn=dsn, name="primary", pool_min=1, pool_max=2,
                                     recover_interval=None)
        tutorial.create(primary)
        with MotherSession(database=primary) as s:
            s.oc_query("INSERT INTO stars (star_id, star_name) VALUES (1, 'Sun')")
        replicated = mother.init_mother(dsn=dsn, name="replicated", pool_min=1, pool_max=2,
                                        recover_interval=None,
                                        replicas=[_on(replica.dsn, name)])
        checking = mother.init_mother(dsn=dsn, name="checking", pool_min=1, pool_max=2,
                                      recover_interval=None, replica_check=1e-6,
                                      replicas=[_on(replica.dsn, name)])
        with MotherSession(database=replicated) as s:
            s.oc_query("UPDATE stars SET star_age = 1")
        position = s.commit_position

        def opened(database: mother.Database, **options: object) -> None:
            for _ in range(OPENS):  # many per timing: a session alone is near the clock's grain
                MotherSession(database=database, readonly=True, **options).close()  # type: ignore[arg-type]

        def read(database: mother.Database) -> None:
            with MotherSession(database=database, readonly=True) as session:
                session.ov_query("SELECT star_name FROM stars WHERE star_id = 1")

        deadline = time.monotonic() + 30
        while MotherSession(database=replicated, readonly=True, after=position).replica is None:
            assert time.monotonic() < deadline, "the replica did not replay the setup in time"
            time.sleep(0.2)
        results = interleaved({
            "open, primary": lambda _: opened(primary),
            "open, replica": lambda _: opened(replicated),
            "open, after=": lambda _: opened(replicated, after=position),
            "open, checking": lambda _: opened(checking),
            "read, primary": lambda _: read(primary),
            "read, replica": lambda _: read(replicated),
        }, rounds)
        for label in results:
            if label.startswith("open"):
                results[label] /= OPENS
        print(f"{rounds} rounds, median microseconds per session")
        for label, micros in results.items():
            print(f"  {label:<16} {micros:8.2f}")
        print(f"  choice overhead  {results['open, replica'] - results['open, primary']:8.2f}")
    finally:
        mother.close_all()
        drop_scratch(server, name)
        pgreplicas.stop(replica)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
