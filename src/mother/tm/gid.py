"""Branch ids: the global id of each prepared transaction dbmother makes.

``mother:<global id>:<decider's database id>:<branch number>``: recovery reads
the transaction and its decider's database from the id alone.
"""

from __future__ import annotations

#: every global transaction id made by dbmother starts with this
GID_PREFIX = "mother"


def make_gid(global_id: str, decider: str, branch: int) -> str:
    """A branch id: ``mother:<global id>:<decider's database id>:<branch number>``
    (ASCII, under 64 bytes, unique per branch; branch 0 is the decider)."""
    return f"{GID_PREFIX}:{global_id}:{decider}:{branch}"


def parse_gid(gid: str) -> tuple[str, str, int] | None:
    """``(global id, decider's database id, branch number)`` of a dbmother branch id,
    or None for a foreign one."""
    parts = gid.split(":")
    if (len(parts) == 4 and parts[0] == GID_PREFIX and len(parts[1]) == 32
            and parts[2] and parts[3].isdigit()):
        return parts[1], parts[2], int(parts[3])
    return None
