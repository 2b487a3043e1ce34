"""What one recovery run costs when nothing is in doubt (run by hand; figures for docs/).

Two PostgreSQL databases, reached through tools/rtproxy.py so that round trips are
counted; each run of ``mother.tm.recover()`` (what automatic recovery does every
``recover_interval``) is timed and its round trips counted, the opening of its
connection to each database included (recovery connects apart from the pools,
so that it never waits for a busy pool).

Usage:
  MOTHER_TEST_PG_DSN="host=127.0.0.1 port=54329 user=postgres dbname=postgres" \\
      .venv/bin/python -m benchmarks.bench_recovery [RUNS]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import mother
from mother import MotherSession
from mother.tm import commitlog, recover
from tools.rtproxy import RoundTripProxy


def main(runs: int) -> None:
    server = os.environ.get("MOTHER_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres")
    params = conninfo_to_dict(server)
    names = [f"mother_bench_rec_{uuid.uuid4().hex[:8]}_{i}" for i in range(2)]
    with psycopg.connect(server, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with RoundTripProxy(params.get("host", "127.0.0.1"), int(params.get("port", 5432))) \
                as proxy:
            dbs = [mother.init_mother(name=f"rec{i}", recover_interval=None, dsn=make_conninfo(
                **{**params, "dbname": name, "host": proxy.host, "port": str(proxy.port),
                   "sslmode": "disable"})) for i, name in enumerate(names)]
            for db in dbs:  # as after a first two-phase commit: each database has its log
                commitlog.database_id(db, MotherSession(database=db))
            recover(dbs)
            trips, times = [], []
            for _ in range(runs):
                proxy.reset()
                start = time.perf_counter()
                report = recover(dbs)
                times.append(time.perf_counter() - start)
                trips.append(proxy.round_trips)
                assert not report.branches
            per_db = statistics.median(trips) / len(dbs)
            print(f"{runs} runs of recover() over {len(dbs)} databases, nothing in doubt; "
                  f"Python {sys.version.split()[0]}, psycopg {psycopg.__version__}")
            print(f"by hand (new connections, log cleaned): median "
                  f"{statistics.median(times) * 1e3:.2f} ms, {statistics.median(trips)} round "
                  f"trips ({per_db:g} per database, opening its connection included)")
            # what automatic recovery does between two cleanings: its connections kept
            kept: dict[str, object] = {}
            recover(dbs, connections=kept, clean=False)
            trips, times = [], []
            for _ in range(runs):
                proxy.reset()
                start = time.perf_counter()
                recover(dbs, connections=kept, clean=False)
                times.append(time.perf_counter() - start)
                trips.append(proxy.round_trips)
            for conn in kept.values():
                conn.close()  # type: ignore[attr-defined]
            print(f"automatic (connections kept, no cleaning): median "
                  f"{statistics.median(times) * 1e3:.2f} ms, {statistics.median(trips)} round "
                  f"trips ({statistics.median(trips) / len(dbs):g} per database)")
            mother.close_all()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
