"""Views used by the Zope tests: each runs inside a real publisher request."""
