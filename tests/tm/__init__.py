"""Tests of mother.tm."""
