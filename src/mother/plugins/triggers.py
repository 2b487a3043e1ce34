"""``MotherTrigger``: run functions before and after a record's insert, update, delete, load."""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Callable
from typing import Any

from ..errors import MotherError
from ..manager import atomic
from ..records import FLAG_NAMES, MO_AFTER, MO_BEFORE, MO_DEL, MO_LOAD, MO_SAVE, MO_UP

log = logging.getLogger(__name__)
ACTIONS = {MO_SAVE: "insert", MO_UP: "update", MO_DEL: "delete", MO_LOAD: "load"}


#: the methods ``_wrap`` made (a subclass of a class with triggers inherits them wrapped once)
_triggered: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()


class TriggerError(MotherError, ValueError):
    """A trigger was registered for an unknown flag or time."""


def _wrap(flag: int, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def triggered(self: Any, *args: Any, **kwargs: Any) -> Any:
        table = self.__dict__.get("_mo_triggers")
        hooks = table.get(flag) if table else None
        if not hooks:
            return method(self, *args, **kwargs)
        firing: set[int] = self.__dict__.setdefault("_mo_firing", set())
        if flag in firing:
            return method(self, *args, **kwargs)
        firing.add(flag)
        try:
            with atomic(self):
                for fn in hooks[MO_BEFORE]:
                    fn()
                result = method(self, *args, **kwargs)
                for fn in hooks[MO_AFTER]:
                    fn()
        finally:
            firing.discard(flag)
        return result

    _triggered.add(triggered)
    return triggered


class MotherTrigger:
    """Mixin: ``self.add_trigger(MO_SAVE, MO_BEFORE, self.check)`` in ``__init__``.

    Triggers fire for the constructor's flag and for direct calls of
    ``insert()``, ``update()``, ``delete()`` and ``load()``, inside a savepoint
    (in a session) or a transaction (shared connection): an error in a
    trigger undoes the action. Triggers are called without arguments (pass
    bound methods); adding the same one twice keeps one.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for flag, name in ACTIONS.items():
            method = getattr(cls, name, None)
            if method is not None and (name in cls.__dict__
                                       or method not in _triggered):
                setattr(cls, name, _wrap(flag, method))

    @staticmethod
    def _mo_check(flag: int, when: int | None = None) -> None:
        if flag not in ACTIONS:
            raise TriggerError(f"triggers are for MO_SAVE, MO_UP, MO_DEL or MO_LOAD, "
                               f"not {FLAG_NAMES.get(flag, flag)!r}")
        if when is not None and when not in (MO_BEFORE, MO_AFTER):
            raise TriggerError(f"a trigger runs MO_BEFORE or MO_AFTER, not {when!r}")

    def initTriggers(self) -> None:
        """Forget every trigger of this record."""
        self.__dict__["_mo_triggers"] = {}

    def add_trigger(self, flag: int, when: int, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` before or after the action of ``flag``."""
        self._mo_check(flag, when)
        if not callable(fn):
            raise TriggerError(f"a trigger must be callable, not {fn!r}")
        table = self.__dict__.setdefault("_mo_triggers", {})
        hooks = table.setdefault(flag, ([], []))[when]
        if fn not in hooks:
            hooks.append(fn)

    def get_triggers(self, flag: int, when: int) -> list[Callable[[], Any]]:
        self._mo_check(flag, when)
        return list(self.__dict__.get("_mo_triggers", {}).get(flag, ([], []))[when])

    def get_flag_triggers(self, flag: int) -> list[Callable[[], Any]]:
        """The BEFORE triggers of ``flag`` followed by its AFTER triggers."""
        return self.get_triggers(flag, MO_BEFORE) + self.get_triggers(flag, MO_AFTER)

    def has_trigger(self, flag: int) -> bool:
        return bool(self.get_flag_triggers(flag))

    def trigger(self, flag: int, when: int, *args: Any) -> None:
        """Run the triggers of ``flag`` and ``when`` now, with ``args``."""
        for fn in self.get_triggers(flag, when):
            fn(*args)
