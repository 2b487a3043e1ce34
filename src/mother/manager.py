"""Children and relations of a record (``MotherManager``), from the schema's foreign keys.

``class ClsStars(DbMother, MotherManager)`` whose ``__init__`` calls
``self.initChildManager()`` gets ``insertPlanets``, ``getMultiplePlanets``…
The methods are made once per class (on the first call) and never replace a
method the class already has; they call the generic methods defined here
(``insertChild``, ``getChildren``, ``assignRelation``…), which take the child
or related table as a class or a table name.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from . import joins
from .database import Database, get_database
from .errors import ArgumentError, NotUniqueError
from .records import MO_DEL, MO_LOAD, MO_NOA, MO_SAVE, MO_UP, DbMother, builder_for
from .schema import ForeignKey
from .session import Session
from .sets import MotherBox, MotherMany
from .unitofwork import PENDING

if TYPE_CHECKING:
    from .unitofwork import Owner

log = logging.getLogger(__name__)
_lock = threading.Lock()

CHILD_PREFIXES = ("insert", "get", "getMultiple", "updateMultiple", "deleteMultiple")
MANY_PREFIXES = ("insertMany", "deleteMany", "loadMany", "updateMany")
RELATION_PREFIXES = ("assign", "join", "dropMultiple", "params")

#: what ``_mo_generate`` has made for a class: (kind, the targets asked for, or None for all)
GeneratedKey = tuple[str, "tuple[Any, ...] | None"]


class RecordLike(Protocol):
    """What ``atomic`` and ``key_values`` use of a record (every ``DbMother`` has it)."""

    _mo_state: int

    @property
    def session(self) -> Owner | None: ...

    def getField(self, name: str, autoload: bool = False) -> Any: ...

    def beginTrans(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class ManagedRecord(RecordLike, Protocol):
    """The self type of ``MotherManager``'s methods: a record class with the mixin.

    The mixin has no columns, schema or session of its own; it works only mixed
    into a ``DbMother`` class (``class ClsStars(DbMother, MotherManager)``), and
    a type checker refuses its methods on any class that is not both.
    """

    table_name: ClassVar[str]
    mother_database: ClassVar[str]
    fnaming: ClassVar[Callable[[str, str], str]]
    _mo_generated: ClassVar[set[GeneratedKey]]

    def _mo_database(self) -> Database: ...


def MotherNaming(table: str, prefix: str | None = None) -> str:
    """Mother's method names: ``("moons_info", "insert")`` gives ``insertMoonsInfo``."""
    name = "".join(part[:1].upper() + part[1:] for part in table.split("_"))
    return f"{prefix or ''}{name}"


def _session(record: RecordLike) -> Session | None:
    """The session ``record`` lives in, as record sets take it (a record's owner is one)."""
    owner = record.session
    if owner is None or isinstance(owner, Session):
        return owner
    raise ArgumentError(f"{record!r} lives in {owner!r}, which is not a Session")


@contextlib.contextmanager
def atomic(record: RecordLike) -> Iterator[None]:
    """All or nothing: a savepoint in a session, a transaction on the shared connection."""
    session = _session(record)
    if session is not None:
        with session.begin_nested():
            yield
        return
    record.beginTrans()
    try:
        yield
    except BaseException:
        record.rollback()
        raise
    record.commit()


def key_values(record: RecordLike, key: ForeignKey) -> dict[str, Any]:
    """``{fk column: value}`` for a foreign key pointing at ``record``'s table."""
    session = record.session
    if record._mo_state == PENDING:
        assert session is not None, "a pending record lives in a session"
        session.flush()
    return {col: record.getField(ref, autoload=True) for col, ref in key.pairs()}


def _target(thing: Any) -> tuple[str, Any]:
    """(table name, what to build records with) for a class, record or table name."""
    if isinstance(thing, str):
        return thing, thing
    builder = builder_for(thing)
    return builder.table_name, builder


class MotherManager:
    """Mixin giving a record class the methods of its children and related tables."""

    #: ``fnaming(table, prefix) -> method name``; override to change the naming rule
    fnaming: ClassVar[Callable[[str, str], str]] = staticmethod(MotherNaming)
    #: per class (in its own ``__dict__``), what ``_mo_generate`` has made for it
    _mo_generated: ClassVar[set[GeneratedKey]]

    # -- set-up ------------------------------------------------------------------------------
    def initChildManager(self: ManagedRecord, children: Sequence[Any] | None = None) -> None:
        """Make the child methods (``insertX``, ``getX``, ``getMultipleX``…); None: all children."""
        _mo_generate(type(self), "child", children)

    def initManyManager(self: ManagedRecord, children: Sequence[Any] | None = None) -> None:
        """Make ``insertManyX``, ``deleteManyX``, ``loadManyX``, ``updateManyX``; None: all."""
        _mo_generate(type(self), "many", children)

    def initRelationManager(self: ManagedRecord, related: Sequence[Any] | None = None) -> None:
        """Make ``assignX``, ``joinX``, ``dropMultipleX``, ``paramsX``; None: all related."""
        _mo_generate(type(self), "relation", related)

    # -- children ----------------------------------------------------------------------------
    def insertChild(self: ManagedRecord, child: Any,
                    store: Mapping[str, Any] | None = None) -> DbMother:
        """Insert a child row, its foreign key taken from this record; returns it."""
        builder = builder_for(child, self._mo_database())
        values = {**(store or {}), **_child_filter(self, builder.table_name)}
        return builder(values, MO_SAVE, self.session)

    def getChild(self: ManagedRecord, child: Any,
                 store: Mapping[str, Any] | None = None) -> DbMother:
        """Load the one child row matching ``store`` (NotUniqueError otherwise)."""
        builder = builder_for(child, self._mo_database())
        values = {**(store or {}), **_child_filter(self, builder.table_name)}
        return builder(values, MO_LOAD, self.session)

    def getChildren(self: ManagedRecord, child: Any, fields: Any = None, filter: Any = None,
                    jbuilder: Any = None, jfilter: Any = None, order: Any = None,
                    outer: bool = False, r_tbl: str | None = None) -> MotherBox:
        """This record's children; ``jbuilder``/``jfilter`` keep those joined to a grandchild
        (or to a table related through a link table) that matches ``jfilter``."""
        builder = builder_for(child, self._mo_database())
        name = builder.table_name
        parts: list[Any] = [joins.Scoped(_child_filter(self, name), (name,)),
                            joins.Scoped(filter, (name,))]
        steps: list[joins.Join] = []
        if jbuilder is not None:
            schema, side = self._mo_database().schema, "LEFT" if outer else ""
            other = _target(jbuilder)[0]
            if joins.is_child(schema, name, other):
                steps = [joins.Join(other, joins.child_key(schema, name, other), side)]
                parts.append(joins.Scoped(jfilter, (other,)))
            else:
                link = joins.find_link(schema, name, other, r_tbl)
                mine, theirs = link.towards(name)
                steps = [joins.Join(link.table, mine, side), joins.Join(other, theirs, side)]
                parts.append(joins.Scoped(jfilter, (link.table, other)))
        return MotherBox(builder, joins.AllOf(tuple(parts)), MO_LOAD, fields, order,
                         _session(self), joins=steps)

    def updateChildren(self: ManagedRecord, child: Any, d_up: Mapping[str, Any],
                       filter: Any = None) -> int:
        """Set ``d_up`` on this record's children (matching ``filter``); returns the row count."""
        builder = builder_for(child, self._mo_database())
        where = joins.AllOf((_child_filter(self, builder.table_name), filter))
        return MotherBox(builder, where, MO_UP, d_up, session=_session(self)).rowcount

    def deleteChildren(self: ManagedRecord, child: Any, filter: Any = None) -> int:
        """Delete this record's children (all of them without ``filter``); returns the count."""
        builder = builder_for(child, self._mo_database())
        where = joins.AllOf((_child_filter(self, builder.table_name), filter))
        return MotherBox(builder, where, MO_DEL, session=_session(self)).rowcount

    def handleManyChildren(self: ManagedRecord, child: Any, flag: int, dlist: Any,
                           fields: Sequence[str] | None = None) -> MotherMany:
        """``MotherMany`` of children; the foreign key is added to each dict in place."""
        builder = builder_for(child, self._mo_database())
        rows = [dlist] if isinstance(dlist, Mapping) else dlist
        if isinstance(rows, (list, tuple)) and rows:
            fk = _child_filter(self, builder.table_name)
            for row in rows:
                if isinstance(row, MutableMapping):
                    row.update(fk)
                elif isinstance(row, Mapping):
                    raise ArgumentError(f"{builder.table_name} rows get the foreign key "
                                        f"added in place: {row!r} cannot take it")
        return MotherMany(builder, rows, flag, _session(self), fields)

    # -- relations ---------------------------------------------------------------------------
    def assignRelation(self: ManagedRecord, related: Any, store: Any = None, flag: int = MO_NOA,
                       params: Mapping[str, Any] | None = None,
                       r_tbl: str | None = None) -> DbMother:
        """Act on the related row as ``flag`` says, then insert the link row with ``params``.

        Both happen or neither (a savepoint in a session). Returns the related record.
        """
        database = self._mo_database()
        builder = builder_for(related, database)
        link, mine, theirs = _link(self, builder.table_name, r_tbl)
        with atomic(self):
            if isinstance(store, DbMother):
                obj = store
                obj._mo_act(flag)
            else:
                obj = builder(store, flag, self.session)
            values = {**key_values(self, mine), **key_values(obj, theirs), **(params or {})}
            builder_for(link, database)(values, MO_SAVE, self.session)
        return obj

    def joinRelated(self: ManagedRecord, related: Any, fields: Any = None, filter: Any = None,
                    jfilter: Any = None, order: Any = None, r_tbl: str | None = None
                    ) -> MotherBox:
        """The related rows linked to this record; ``filter`` applies to the link table,
        ``jfilter`` to the related table (as in Mother)."""
        return _related(self, builder_for(related, self._mo_database()), fields, filter,
                        jfilter, order, r_tbl)

    def dropRelations(self: ManagedRecord, related: Any, filter: Any = None, jfilter: Any = None,
                      flag: int = MO_NOA, r_tbl: str | None = None) -> int:
        """Remove the links to the related rows ``joinRelated`` finds; with ``MO_DEL`` also
        delete those rows. All or nothing; returns how many related rows were concerned."""
        database = self._mo_database()
        builder = builder_for(related, database)
        link, mine, theirs = _link(self, builder.table_name, r_tbl)
        refs = list(theirs.ref_columns)
        table = database.schema.table(builder.table_name)
        keys = list(table.primary_key) if flag == MO_DEL and table.primary_key else refs
        rows = _related(self, builder, list(dict.fromkeys(refs + keys)), filter, jfilter,
                        None, r_tbl).getRecords()
        if not rows:
            return 0
        mine_values = key_values(self, mine)
        link_rows = [{**mine_values, **{col: row[ref] for col, ref in theirs.pairs()}}
                     for row in rows]
        link_builder = builder_for(link, database)
        with atomic(self):
            for values in link_rows:  # the filter limits which link rows go, as in joinRelated
                MotherBox(link_builder, joins.AllOf((values, joins.Scoped(filter, (link,)))),
                          MO_DEL, session=_session(self))
            if flag == MO_DEL:
                MotherMany(builder, [{k: row[k] for k in keys} for row in rows], MO_DEL,
                           _session(self))
        return len(rows)

    def relParams(self: ManagedRecord, related: Any, fields: Sequence[str] | None = None,
                  flag_obj: bool = False, r_tbl: str | None = None,
                  builder: Any = None) -> Any:
        """The link row between this record and ``related`` (a record or a dict of it)."""
        database = self._mo_database()
        if isinstance(related, DbMother):
            obj = related
        else:
            obj = builder_for(builder, database)(dict(related or {}), MO_NOA, self.session)
        link, mine, theirs = _link(self, obj.table_name, r_tbl)
        values = {**key_values(self, mine), **key_values(obj, theirs)}
        rows = MotherBox(link, values, MO_LOAD, fields, session=_session(self)).getRecords()
        if len(rows) != 1:
            raise NotUniqueError(f"link {link} between {self.table_name} and {obj.table_name}",
                                 len(rows))
        row = {**values, **rows[0]}
        if flag_obj:
            return builder_for(link, database).from_row(self.session, row)
        return row


def _mo_generate(cls: type[ManagedRecord], kind: str, targets: Sequence[Any] | None) -> None:
    """Attach the ``kind`` methods for ``targets`` (None: every child or related table)."""
    key: GeneratedKey = (kind, None if not targets else tuple(targets))
    done = cls.__dict__.get("_mo_generated")
    if done is not None and key in done:
        return
    with _lock:
        if "_mo_generated" not in cls.__dict__:
            cls._mo_generated = set()
        schema = get_database(cls.mother_database).schema
        me = cls.table_name
        if not targets:
            if kind == "relation":
                targets = joins.related_tables(schema, me)
            else:
                targets = list(dict.fromkeys(fk.table for fk in schema.child_keys(me)))
        for target in targets:
            table, build = _target(target)
            schema.table(table)
            if kind == "relation":
                with contextlib.suppress(joins.AmbiguousRelationError):
                    joins.find_link(schema, me, table)  # r_tbl chooses at call time
            elif not joins.is_child(schema, me, table):
                raise joins.RelationError(f"{table} is not a child of {me}")
            for prefix, method in _FACTORIES[kind](build).items():
                name = cls.fnaming(table, prefix)
                if not hasattr(cls, name):
                    method.__name__ = method.__qualname__ = name
                    setattr(cls, name, method)
        cls._mo_generated.add(key)


def _child_filter(record: ManagedRecord, child: str) -> dict[str, Any]:
    """The foreign-key values a child row of ``record`` in table ``child`` has."""
    schema = record._mo_database().schema
    return key_values(record, joins.child_key(schema, record.table_name, child))


def _link(record: ManagedRecord, related: str, r_tbl: str | None
          ) -> tuple[str, ForeignKey, ForeignKey]:
    """(link table, its key towards ``record``'s table, its key towards ``related``)."""
    link = joins.find_link(record._mo_database().schema, record.table_name, related, r_tbl)
    mine, theirs = link.towards(record.table_name)
    return link.table, mine, theirs


def _related(record: ManagedRecord, builder: type[DbMother], fields: Any, filter: Any,
             jfilter: Any, order: Any, r_tbl: str | None) -> MotherBox:
    """``joinRelated``'s record set (``dropRelations`` reads the rows it will unlink from it)."""
    link, mine, theirs = _link(record, builder.table_name, r_tbl)
    where = joins.AllOf((joins.Scoped(key_values(record, mine), (link,)),
                         joins.Scoped(filter, (link,)),
                         joins.Scoped(jfilter, (builder.table_name,))))
    return MotherBox(builder, where, MO_LOAD, fields, order, _session(record), distinct=True,
                     joins=[joins.Join(link, theirs)])


# -- the generated methods: thin closures over the generic ones ----------------------------------
# (their ``self`` is Any: they are attached with setattr to a class that is both a DbMother
# and a MotherManager, so a type checker never sees them on it)
def _child_methods(target: Any) -> dict[str, Callable[..., Any]]:
    def insert(self: Any, store: Mapping[str, Any] | None = None) -> DbMother:
        made: DbMother = self.insertChild(target, store)
        return made

    def get(self: Any, store: Mapping[str, Any] | None = None) -> DbMother:
        made: DbMother = self.getChild(target, store)
        return made

    def get_multiple(self: Any, fields: Any = None, filter: Any = None, jbuilder: Any = None,
                     jfilter: Any = None, order: Any = None, outer: bool = False,
                     r_tbl: str | None = None) -> MotherBox:
        made: MotherBox = self.getChildren(target, fields, filter, jbuilder, jfilter, order,
                                           outer, r_tbl)
        return made

    def update_multiple(self: Any, d_up: Mapping[str, Any], filter: Any = None) -> int:
        made: int = self.updateChildren(target, d_up, filter)
        return made

    def delete_multiple(self: Any, filter: Any = None) -> int:
        made: int = self.deleteChildren(target, filter)
        return made

    return dict(zip(CHILD_PREFIXES, (insert, get, get_multiple, update_multiple,
                                     delete_multiple)))


def _many_methods(target: Any) -> dict[str, Callable[..., Any]]:
    def make(flag: int) -> Callable[..., MotherMany]:
        def many(self: Any, dlist: Any, fields: Sequence[str] | None = None) -> MotherMany:
            made: MotherMany = self.handleManyChildren(target, flag, dlist, fields)
            return made
        return many

    return dict(zip(MANY_PREFIXES, (make(MO_SAVE), make(MO_DEL), make(MO_LOAD), make(MO_UP))))


def _relation_methods(target: Any) -> dict[str, Callable[..., Any]]:
    def assign(self: Any, store: Any = None, flag: int = MO_NOA,
               params: Mapping[str, Any] | None = None, r_tbl: str | None = None) -> DbMother:
        made: DbMother = self.assignRelation(target, store, flag, params, r_tbl)
        return made

    def join(self: Any, fields: Any = None, filter: Any = None, jfilter: Any = None,
             order: Any = None, r_tbl: str | None = None) -> MotherBox:
        made: MotherBox = self.joinRelated(target, fields, filter, jfilter, order, r_tbl)
        return made

    def drop_multiple(self: Any, filter: Any = None, jfilter: Any = None, flag: int = MO_NOA,
                      r_tbl: str | None = None) -> int:
        made: int = self.dropRelations(target, filter, jfilter, flag, r_tbl)
        return made

    def params(self: Any, obj: Any, fields: Sequence[str] | None = None,
               flag_obj: bool = False, r_tbl: str | None = None) -> Any:
        return self.relParams(obj, fields, flag_obj, r_tbl, builder=target)

    return dict(zip(RELATION_PREFIXES, (assign, join, drop_multiple, params)))


_FACTORIES: dict[str, Callable[[Any], dict[str, Callable[..., Any]]]] = {
    "child": _child_methods, "many": _many_methods, "relation": _relation_methods}
