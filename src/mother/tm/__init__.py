"""Sessions joined to the transactions of the ``transaction`` package (Zope, Pyramid, scripts).

``join(session)`` makes ``transaction.commit()`` drive the session through
two-phase commit and ``transaction.abort()`` roll it back; ``register()`` and
``current_session()`` give one session per transaction per database;
``recover()`` resolves what a crash left prepared, and ``autorecovery`` does it in
the background. See the "Transactions" chapter.
"""

from . import autorecovery, commitlog
from .commitlog import COMMIT_LOG
from .datamanager import MotherDataManager, NoActiveTransactionError, TransactionState, join
from .gid import GID_PREFIX, make_gid, parse_gid
from .recovery import Branch, RecoveryReport, recover
from .scoping import Registration, current_session, register, unregister

__all__ = [
    "COMMIT_LOG", "GID_PREFIX", "Branch", "MotherDataManager", "NoActiveTransactionError",
    "RecoveryReport", "Registration", "TransactionState", "autorecovery", "commitlog",
    "current_session", "join", "make_gid", "parse_gid", "recover", "register", "unregister",
]
