"""Tests of mother.dialects."""
