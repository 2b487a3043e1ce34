"""The last errors of a database, for the Status tab of a Mother Database Connection."""

from __future__ import annotations

import collections
import dataclasses
import threading
import time

import mother

#: how many errors a database keeps
KEPT = 20


@dataclasses.dataclass(frozen=True)
class LoggedError:
    """One error: when, where (a statement, or a commit phase) and what."""

    when: float
    where: str
    kind: str
    message: str

    @property
    def time(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.when))


class ErrorLog:
    """A ``Database.error_translators`` entry that translates nothing: it remembers the
    last :data:`KEPT` errors of the database's sessions (newest first), with where they
    happened (``statement`` or the commit phase)."""

    def __init__(self) -> None:
        self._errors: collections.deque[LoggedError] = collections.deque(maxlen=KEPT)
        self._lock = threading.Lock()

    def __call__(self, error: BaseException, where: str) -> None:
        self.record(error, where)

    def record(self, error: BaseException, where: str) -> None:
        entry = LoggedError(time.time(), where, type(error).__name__, str(error).strip())
        with self._lock:
            self._errors.appendleft(entry)

    def errors(self) -> list[LoggedError]:
        with self._lock:
            return list(self._errors)


def error_log(database: mother.Database) -> ErrorLog:
    """The database's error log, installed first among its translators on first use."""
    for translator in database.error_translators:
        if isinstance(translator, ErrorLog):
            return translator
    log = ErrorLog()
    database.error_translators.insert(0, log)
    return log
