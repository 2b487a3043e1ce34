"""Tools of the dbmother checkout, run from its root as ``python -m tools.<name>``.

``pgcluster`` (the PostgreSQL server of the tests), ``pgbouncer`` (PgBouncer in
transaction mode in front of it) and ``rtproxy`` (the round-trip counter) are also
imported by the tests and the benchmarks; they use nothing of the checkout (but
each other), so ``python tools/pgcluster.py ensure`` works as well.
"""
