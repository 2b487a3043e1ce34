"""Sphinx configuration of the dbmother documentation (built with -n -W: nitpicky, and
every warning is an error)."""

project = "dbmother"
author = "the dbmother developers"
copyright = "2026, the dbmother developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
html_theme = "furo"
html_static_path = ["_static"]
html_css_files = ["mother.css"]
exclude_patterns = ["_build"]
nitpicky = True
# The build runs where only PyPI and Debian are reachable, so there is no intersphinx
# inventory of Python or of the libraries: names from outside dbmother stay plain text.
nitpick_ignore_regex = [
    (r"py:.*", r"(typing|collections\.abc|types|datetime|argparse|configparser|threading|"
               r"contextvars|sqlite3|psycopg|psycopg_pool|transaction|zope|pyramid|"
               r"pyramid_debugtoolbar|webob|Products|"
               r"Shared|OFS|App|Acquisition|AccessControl|ZPublisher)(\..*)?"),
    (r"py:class", r"(Any|Callable|Iterator|Iterable|Mapping|Sequence|TextIO|Path|Enum|"
                  r"Exception|ValueError|TypeError|LookupError|KeyError|RuntimeError|"
                  r"dataclasses\..*|enum\..*|os\.PathLike|pathlib\..*)"),
    (r"py:exc", r"(Exception|ValueError|TypeError|LookupError|KeyError|RuntimeError)"),
    (r"py:mod", r"(contextvars|tracemalloc|sqlite3|logging)"),
    # documented where they are used, not on their own: private helpers, type variables, the
    # join description of a record set, Pyramid's request in a type hint
    (r"py:class", r"(.*\._\w+|mother\.zope\.retry\.[PR]|~P|mother\.database\.R|mother\.events\.T|"
                  r"mother\.dialects\.base\.T|joins\.Join|Request)"),
]
