"""Tests of mother.plugins."""
