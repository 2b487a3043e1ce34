"""Tests of mother.zope."""
