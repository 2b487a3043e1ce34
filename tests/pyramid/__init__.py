"""Tests of mother.pyramid."""
