"""``MotherCaster``: clean a record's initial values (drop unknown, cast, require)."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from ..errors import MoWrongFields
from ..sql import SQL_DEFAULT

log = logging.getLogger(__name__)
#: the record method the caster wraps (DbMother's, of the class the mixin is mixed into)
_HOOK = "_mo_init_store"
#: the wrappers ``_cast_store`` made (a subclass of a casting class is not wrapped twice)
_casting: weakref.WeakSet[Callable[..., None]] = weakref.WeakSet()


def _cast_store(original: Callable[[Any, dict[str, Any]], None]
                ) -> Callable[[Any, dict[str, Any]], None]:
    def _mo_init_store(self: Any, store: dict[str, Any]) -> None:
        columns = self._mo_table().columns
        clean = {name: value for name, value in store.items() if name in columns}
        if len(clean) != len(store):
            log.debug("%s: dropped unknown fields %s", self.table_name,
                      sorted(set(store) - set(clean)))
        ifields = []
        for name, kind in self.cast_fields.items():
            value = clean.get(name)
            if value is None or value is SQL_DEFAULT or (isinstance(kind, type)
                                                         and isinstance(value, kind)):
                continue
            if self.autocast:
                try:
                    clean[name] = kind(value)
                    continue
                except (TypeError, ValueError):
                    pass
            ifields.append(name)
            del clean[name]
        mfields = [name for name in self.required_fields if name not in clean]
        if ifields or mfields:
            raise MoWrongFields(ifields, mfields)
        original(self, clean)

    _casting.add(_mo_init_store)
    return _mo_init_store


class MotherCaster:
    """Mixin: ``cast_fields = {"star_mass": int}``, ``required_fields = ["star_name"]``.

    On creation, keys that are not columns are dropped, values of
    ``cast_fields`` of the wrong type are converted (``autocast``, default on),
    and :class:`~mother.errors.MoWrongFields` lists the values that could not
    be converted (``ifields``) and the required fields missing (``mfields``).
    """

    cast_fields: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    required_fields: ClassVar[Sequence[str]] = ()
    autocast: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        current = getattr(cls, _HOOK, None)
        if current is not None and current not in _casting:
            setattr(cls, _HOOK, _cast_store(current))

    def __init__(self, autocast: bool = True) -> None:
        """Mother's way to switch autocast off for one record (before ``DbMother.__init__``)."""
        if autocast != type(self).autocast:
            self.__dict__["autocast"] = autocast
