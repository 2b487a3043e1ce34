"""What a filter may hold besides a dict of equalities: programmer-written conditions with
bound parameters (:class:`MoFilter`) and comparisons other than equality (:class:`Compare`).

:mod:`mother.sql` compiles them into statements.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .errors import MotherError


class InvalidFilterError(MotherError, TypeError):
    """A filter of a kind dbmother does not understand."""


class MoFilter:
    """A filter made of programmer-written SQL conditions with bound parameters.

    ``MoFilter("star_mass > %(mass)s", store={"mass": 5})`` (placeholders are
    the driver's own). A dict adds equality conditions, a list of column names
    takes their values from ``store``. Text is trusted SQL: never build it from
    user input.
    """

    def __init__(self, filter: Any = None, table: str | None = None,
                 store: Mapping[str, Any] | None = None) -> None:
        self.parts: list[tuple[str, Any, str | None]] = []
        self.params: dict[str, Any] = {}
        self.add_filter(filter, table, store)

    def add_filter(self, filter: Any, table: str | None = None,
                   store: Mapping[str, Any] | None = None) -> MoFilter:
        """Add a condition: text, a dict of equalities, or column names valued from ``store``."""
        if store:
            self.params.update(store)
        if not filter:
            return self
        if isinstance(filter, str):
            self.parts.append(("text", filter, table))
        elif isinstance(filter, Mapping):
            self.parts.append(("dict", dict(filter), table))
        elif isinstance(filter, (list, tuple, set, frozenset)):
            missing = [name for name in filter if store is None or name not in store]
            if missing:
                raise InvalidFilterError(f"filter keys {missing} have no value in store")
            values = store or {}
            self.parts.append(("dict", {name: values[name] for name in filter}, table))
        elif isinstance(filter, MoFilter):
            self.parts.extend(filter.parts)
            self.params.update(filter.params)
        else:
            raise InvalidFilterError(f"a filter must be a str, dict, list or MoFilter, "
                                     f"not {type(filter).__name__}")
        return self

    def __bool__(self) -> bool:
        return bool(self.parts)


@dataclasses.dataclass(frozen=True)
class Compare:
    """A condition other than equality, as the value of a dict filter:
    ``{"decided_at": Compare("<", t)}``, ``{"id": Compare("not in", ids)}``."""

    op: str
    value: Any

    OPS = ("<>", "<", "<=", ">", ">=", "in", "not in")

    def __post_init__(self) -> None:
        if self.op not in self.OPS:
            raise InvalidFilterError(f"Compare({self.op!r}, …): the operator is one of "
                                     + ", ".join(self.OPS))
