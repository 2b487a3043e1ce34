"""Hostile names and values: SQL injection attempts, quoting tricks, placeholders, NUL.

The injection tests pass each as a table, column or value; the property tests
of hostile input draw from them.
"""

EVIL = [
    'stars"; DROP TABLE stars; --',
    "star_name = star_name; DELETE FROM stars",
    "x' OR '1'='1",
    'star_name" FROM stars; --',
    "star_name` FROM stars; --",
    "stars.star_name",
    "",
    "%(x)s",
    ":x",
    "star_name\x00",
]
