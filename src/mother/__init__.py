"""dbmother: PostgreSQL and SQLite rows as objects, sessions driven by the transaction package.

Everything public is importable from here::

    from mother import init_mother, MotherSession, DbMother, MO_SAVE
"""

from .database import Database, close_all, databases, get_database, init_mother, is_transient
from .errors import (
    ArgumentError,
    BadValueError,
    CommitOutcomeUnknownError,
    ConfigError,
    ConnectionLostError,
    DeletedRecordError,
    FlushError,
    MotherError,
    MoWrongFields,
    NotLoadedError,
    NotUniqueError,
    ParanoidError,
    PoolTimeoutError,
    PreparedStatementLostError,
    PrimaryKeyError,
    ReadOnlySessionError,
    RecoveryError,
    RolledBackError,
    SessionClosedError,
    SessionConflictError,
    StaleRecordError,
    TransactionManagedError,
    UnknownFieldError,
    UnknownTableError,
    UnsupportedDriverError,
)
from .filters import InvalidFilterError, MoFilter
from .manager import MotherManager
from .records import (
    MO_AFTER,
    MO_BEFORE,
    MO_DEL,
    MO_LOAD,
    MO_NOA,
    MO_SAVE,
    MO_UP,
    DbMother,
    MotherFly,
    getMotherBuilder,
    getMotherObj,
)
from .replicas import WalPosition
from .scoping import object_session, scoped_session, session_scope
from .session import MotherPoolStatus, MotherPoolStratus, MotherSession, Session
from .sets import MotherBox, MotherFusion, MotherMany
from .sql import SQL_DEFAULT, SQL_FALSE, SQL_NULL, SQL_TRUE, InvalidLockError
from .sqltext import RawFilterError

#: every public name (a literal list, so that type checkers see what is exported;
#: tests/test_init.py checks it against the names imported above)
__all__ = [
    "ArgumentError", "BadValueError", "CommitOutcomeUnknownError", "ConfigError",
    "ConnectionLostError", "Database", "DbMother", "DeletedRecordError", "FlushError",
    "InvalidFilterError",
    "InvalidLockError", "MO_AFTER", "MO_BEFORE", "MO_DEL", "MO_LOAD", "MO_NOA", "MO_SAVE", "MO_UP",
    "MoFilter", "MoWrongFields", "MotherBox", "MotherError", "MotherFly", "MotherFusion",
    "MotherManager", "MotherMany", "MotherPoolStatus", "MotherPoolStratus", "MotherSession",
    "NotLoadedError", "NotUniqueError", "ParanoidError", "PoolTimeoutError",
    "PreparedStatementLostError", "PrimaryKeyError",
    "RawFilterError", "ReadOnlySessionError", "RecoveryError", "RolledBackError",
    "SQL_DEFAULT", "SQL_FALSE",
    "SQL_NULL", "SQL_TRUE", "Session", "SessionClosedError", "SessionConflictError",
    "StaleRecordError", "TransactionManagedError", "UnknownFieldError", "UnknownTableError",
    "UnsupportedDriverError", "WalPosition",
    "close_all", "databases", "getMotherBuilder", "getMotherObj", "get_database", "init_mother",
    "is_transient", "object_session", "scoped_session", "session_scope",
]
