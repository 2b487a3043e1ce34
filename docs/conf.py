"""Sphinx configuration of the dbmother documentation."""

project = "dbmother"
author = "the dbmother developers"
copyright = "2026, the dbmother developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
html_theme = "alabaster"
exclude_patterns = ["_build"]
intersphinx_mapping = {}
nitpicky = False
