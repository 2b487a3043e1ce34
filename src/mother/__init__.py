"""dbmother: PostgreSQL and SQLite rows as objects, sessions driven by the transaction package.

Everything public is importable from here::

    from mother import init_mother, MotherSession, DbMother, MO_SAVE
"""

import types as _types

from .database import Database, close_all, databases, get_database, init_mother, is_transient
from .errors import (
    ArgumentError,
    BadValueError,
    CommitOutcomeUnknownError,
    ConfigError,
    ConnectionLostError,
    FlushError,
    MotherError,
    MoWrongFields,
    NotLoadedError,
    NotUniqueError,
    ParanoidError,
    PoolTimeoutError,
    PrimaryKeyError,
    ReadOnlySessionError,
    RolledBackError,
    SessionClosedError,
    SessionConflictError,
    StaleRecordError,
    TransactionManagedError,
    UnknownFieldError,
    UnknownTableError,
    UnsupportedDriverError,
)
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
from .scoping import object_session, scoped_session, session_scope
from .session import MotherPoolStatus, MotherPoolStratus, MotherSession, Session
from .sets import MotherBox, MotherFusion, MotherMany
from .sql import (
    SQL_DEFAULT,
    SQL_FALSE,
    SQL_NULL,
    SQL_TRUE,
    InvalidFilterError,
    InvalidLockError,
    MoFilter,
)
from .sqltext import RawFilterError

__all__ = sorted(name for name, value in globals().items()
                 if not name.startswith("_") and not isinstance(value, _types.ModuleType))
