"""Interfaces of the Zope integration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zope.interface import Interface

if TYPE_CHECKING:
    from mother import Database, Session

    from .adapter import ZRDBAdapter
    from .restricted import ScriptSession


class IMotherDatabase(Interface):
    """A :class:`mother.Database` registered as a named utility by ``<mother:database>``."""


class IMotherConnection(Interface):
    """The ZMI-addable "Mother Database Connection", a ``Shared.DC.ZRDB`` SQL connection."""

    def database() -> Database:
        """The :class:`mother.Database` made from the stored settings (pool created lazily)."""

    def session() -> Session:
        """The session scoped to the current request's transaction, joined on first use
        (trusted code; Z SQL Methods of the connection run on it)."""

    def script_session() -> ScriptSession:
        """That session as restricted code may use it (*Use Database Methods*)."""

    def __call__() -> ZRDBAdapter:
        """The database object Z SQL Methods run their statements on."""
