"""Child process of the fork tests: a pre-fork server's master that used its database.

Usage: python -m tests.support.fork_child DSN [REPLICA_DSN]

Configures DSN (with REPLICA_DSN as its replica), runs a query in a session (the
pool opens), one on the shared connection (and one in a read-only session, on the
replica), then forks a worker that does the same, as a gunicorn ``--preload``
worker would, and exits. The master then runs the queries again. Prints one JSON
line: the server process ids (``pg_backend_pid()``) each side used, by kind.
"""

from __future__ import annotations

import json
import os
import sys

import mother

PID = "SELECT pg_backend_pid() AS pid"


def backends() -> dict[str, int]:
    with mother.MotherSession() as session:
        pooled = session.ov_query(PID)
    shared = mother.getMotherBuilder("stars")().ov_query(PID)
    found = {"pool": pooled, "shared": shared}
    if mother.get_database().replicas is not None:
        with mother.MotherSession(readonly=True) as session:
            assert session.replica is not None, "the replica serves read-only sessions"
            found["replica"] = session.ov_query(PID)
    return found


def main(dsn: str, *replicas: str) -> None:
    mother.init_mother(dsn=dsn, pool_min=1, pool_max=1, recover_interval=None,
                       replicas=list(replicas))
    before = backends()
    read, write = os.pipe()
    worker = os.fork()
    if worker == 0:
        os.close(read)
        try:
            found: object = backends()
        except Exception as error:
            found = f"{type(error).__name__}: {error}"
        os.write(write, json.dumps(found).encode())
        os._exit(0)  # as a killed worker would: nothing closed on the way out
    os.close(write)
    with os.fdopen(read) as pipe:
        child = json.loads(pipe.read())
    os.waitpid(worker, 0)
    print(json.dumps({"before": before, "child": child, "after": backends()}))
    mother.close_all()


if __name__ == "__main__":
    main(*sys.argv[1:])
