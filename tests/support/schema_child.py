"""Child process of the schema check tests: an application process with the schema cached.

Usage: python -m tests.support.schema_child DSN SCHEMA_CHECK SECONDS

Configures DSN with ``schema_check=SCHEMA_CHECK``, inserts a star (so the schema
of ``stars`` is cached), prints ``{"columns": [...]}``, then waits for a line on
stdin (the parent has migrated: ``stars`` has a new column ``star_colour``).
Then it runs one short session after another, for at most SECONDS, until its
cached schema has the new column; once it has, it inserts a star with a colour
through a record. Prints ``{"seen": bool, "after": seconds, "sessions": n}``.
"""

from __future__ import annotations

import json
import sys
import time

import mother

NEW = "star_colour"


def say(**values: object) -> None:
    print(json.dumps(values), flush=True)


def main(dsn: str, check: str, seconds: float) -> None:
    database = mother.init_mother(dsn=dsn, schema_check=check, pool_min=1,
                                  recover_interval=None)
    with mother.MotherSession() as session:
        mother.getMotherObj("stars", {"star_name": "Sol"}, mother.MO_SAVE, session)
    say(columns=sorted(database.schema.table("stars").columns))
    sys.stdin.readline()
    start = time.monotonic()
    sessions = 0
    while NEW not in database.schema.table("stars").columns:
        if time.monotonic() - start > seconds:
            break
        with mother.MotherSession() as session:
            session.ov_query("SELECT 1")
        sessions += 1
        time.sleep(0.02)
    after = time.monotonic() - start
    seen = NEW in database.schema.table("stars").columns
    if seen:
        with mother.MotherSession() as session:
            mother.getMotherObj("stars", {"star_name": "Vega", NEW: "blue"}, mother.MO_SAVE,
                                session)
    say(seen=seen, after=after, sessions=sessions)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
