"""Interfaces of the Zope integration."""

from __future__ import annotations

from zope.interface import Interface


class IMotherDatabase(Interface):
    """A :class:`mother.Database` registered as a named utility by ``<mother:database>``."""


class IMotherConnection(Interface):
    """The ZMI-addable "Mother Database Connection"."""

    def database():
        """The :class:`mother.Database` made from the stored settings (pool created lazily)."""

    def session():
        """The session scoped to the current request's transaction, joined on first use."""
