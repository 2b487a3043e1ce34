"""Child process of the recovery tests: a two-database transaction that dies at a chosen point.

Usage: python tm_crash_child.py DSN1 DSN2 POINT, POINT being before-vote, after-votes,
between-commits or none. The data manager's methods are wrapped to call os._exit().
"""

from __future__ import annotations

import os
import sys

import transaction

import mother
from mother.tm import MotherDataManager, join

dsn1, dsn2, point = sys.argv[1:4]
calls = {"tpc_vote": 0, "tpc_finish": 0}
crash_at = {"before-vote": ("tpc_vote", 1), "after-votes": ("tpc_finish", 1),
            "between-commits": ("tpc_finish", 2)}.get(point)


def wrap(name: str) -> None:
    original = getattr(MotherDataManager, name)

    def wrapper(self: MotherDataManager, txn: object) -> None:
        calls[name] += 1
        if crash_at == (name, calls[name]):
            os._exit(17)
        original(self, txn)

    setattr(MotherDataManager, name, wrapper)


wrap("tpc_vote")
wrap("tpc_finish")
mother.init_mother(dsn=dsn1, name="default", pool_min=1)
mother.init_mother(dsn=dsn2, name="second", pool_min=1)
for database in ("default", "second"):
    s = mother.MotherSession(f"crash-{database}", database=database)
    join(s)
    s.oc_query("INSERT INTO stars (star_name) VALUES ('crash')")
transaction.commit()
print("committed")
