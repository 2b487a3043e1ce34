"""A small thread-safe pool for drivers without one (SQLite).

It implements Mother's three policies: ``limited`` (at most ``pool_max``
connections; a caller waits up to ``pool_timeout`` for one), ``elastic`` (like
limited, but connections above ``pool_min`` are closed when they come back)
and ``growing`` (no upper bound).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .config import Settings
from .dialects.base import PoolStatus
from .errors import PoolTimeoutError


class SimplePool:
    def __init__(
        self,
        settings: Settings,
        connect: Callable[[], Any],
        reset: Callable[[Any], bool],
        close: Callable[[Any], None],
    ) -> None:
        self.settings = settings
        self._connect = connect
        self._reset = reset
        self._close_conn = close
        self._idle: list[Any] = []
        self._size = 0
        self._waiting = 0
        self._closed = False
        self._cond = threading.Condition()
        self._limit = None if settings.pool_type == "growing" else settings.pool_max

    def getconn(self, timeout: float | None = None) -> Any:
        wait = self.settings.pool_timeout if timeout is None else timeout
        with self._cond:
            self._waiting += 1
            try:
                ok = self._cond.wait_for(
                    lambda: self._closed or self._idle or self._limit is None
                    or self._size < self._limit,
                    timeout=wait,
                )
            finally:
                self._waiting -= 1
            if self._closed:
                raise PoolTimeoutError("the pool is closed")
            if not ok:
                raise PoolTimeoutError(
                    f"no connection available within {wait} s "
                    f"({self._size} in use, pool_max={self.settings.pool_max}); "
                    "end sessions sooner or raise pool_max")
            if self._idle:
                return self._idle.pop()
            self._size += 1
        try:
            return self._connect()
        except BaseException:
            with self._cond:
                self._size -= 1
                self._cond.notify()
            raise

    def putconn(self, conn: Any) -> None:
        healthy = self._reset(conn)
        with self._cond:
            keep = (healthy and not self._closed and not (
                self.settings.pool_type == "elastic" and self._size > self.settings.pool_min))
            if keep:
                self._idle.append(conn)
            else:
                self._size -= 1
            self._cond.notify()
        if not keep:
            self._close_conn(conn)

    def status(self) -> PoolStatus:
        with self._cond:
            return PoolStatus(
                pool_type=self.settings.pool_type, size=self._size,
                available=len(self._idle), in_use=self._size - len(self._idle),
                waiting=self._waiting, minimum=self.settings.pool_min, maximum=self._limit)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._size -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            self._close_conn(conn)
