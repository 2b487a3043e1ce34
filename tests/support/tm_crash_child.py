"""Child process of the recovery tests: a two-database transaction that dies at a chosen point.

Usage: python -m tests.support.tm_crash_child DSN1 DSN2 POINT, POINT being before-vote (the first
branch's vote), after-votes (every branch prepared, before the decision), after-decision
(the decider committed, before any tpc_finish), between-commits (after the first tpc_finish)
or none. The data managers' methods are wrapped to call os._exit().
"""

from __future__ import annotations

import os
import sys

import transaction

import mother
from mother.tm import MotherDataManager, join
from mother.tm.datamanager import Decision

dsn1, dsn2, point = sys.argv[1:4]
calls = {"tpc_vote": 0, "tpc_finish": 0, "decide": 0}
crash_at = {"before-vote": ("tpc_vote", 1), "after-votes": ("decide", 1),
            "after-decision": ("tpc_finish", 1), "between-commits": ("tpc_finish", 2)}.get(point)


def wrap(cls: type, name: str, counter: str) -> None:
    original = getattr(cls, name)

    def wrapper(self: object, txn: object) -> None:
        calls[counter] += 1
        if crash_at == (counter, calls[counter]):
            os._exit(17)
        original(self, txn)

    setattr(cls, name, wrapper)


wrap(MotherDataManager, "tpc_vote", "tpc_vote")
wrap(MotherDataManager, "tpc_finish", "tpc_finish")
wrap(Decision, "tpc_vote", "decide")
mother.init_mother(dsn=dsn1, name="default", pool_min=1)
mother.init_mother(dsn=dsn2, name="second", pool_min=1)
for database in ("default", "second"):
    s = mother.MotherSession(f"crash-{database}", database=database)
    join(s)
    s.oc_query("INSERT INTO stars (star_name) VALUES ('crash')")
transaction.commit()
print("committed")
