"""The dbmother demonstration: a small Pyramid app on Mother's tutorial tables.

``mother demo`` serves it with waitress (see :mod:`mother.pyramid.demo.serve`).
"""

from __future__ import annotations

import secrets
from typing import Any

from pyramid.config import Configurator
from pyramid.router import Router

from ... import get_database
from .models import setup


def main(global_config: Any = None, **settings: Any) -> Router:
    """The WSGI application (a PasteDeploy ``app_factory``)."""
    settings.setdefault("mother.websession.secret", secrets.token_hex(32))
    settings.setdefault("mother.websession.reissue_time", "60")
    settings.setdefault("jinja2.directories", "mother.pyramid.demo:templates")
    with Configurator(settings=settings) as config:
        config.include("pyramid_jinja2")
        config.include("mother.pyramid")
        setup(get_database("default"))
        config.set_default_csrf_options(require_csrf=True)
        config.add_static_view("static", "mother.pyramid.demo:static", cache_max_age=3600)
        config.add_route("home", "/")
        config.add_route("add_star", "/stars")
        config.add_route("crash", "/crash")
        config.add_route("forget", "/session/forget")
        config.scan("mother.pyramid.demo.views")
    return config.make_wsgi_app()
