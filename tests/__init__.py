"""dbmother's test suite: tests mirror ``src/mother`` (``tests/tm/`` for ``mother.tm``, ...);
what the tests share is in :mod:`tests.support`."""
