"""Interfaces of the Zope integration."""

from __future__ import annotations

from zope.interface import Interface


class IMotherDatabase(Interface):
    """A :class:`mother.Database` registered as a named utility by ``<mother:database>``."""


class IMotherConnection(Interface):
    """The ZMI-addable "Mother Database Connection", a ``Shared.DC.ZRDB`` SQL connection."""

    def database():
        """The :class:`mother.Database` made from the stored settings (pool created lazily)."""

    def session():
        """The session scoped to the current request's transaction, joined on first use
        (trusted code; Z SQL Methods of the connection run on it)."""

    def script_session():
        """That session as restricted code may use it (*Use Database Methods*)."""

    def __call__():
        """The database object Z SQL Methods run their statements on."""
