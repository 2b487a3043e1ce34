"""The dbmother demonstration: a small Pyramid app on Mother's tutorial tables and two
databases, whose pages show what each request sent and how its transaction ended.

``mother demo`` serves it with waitress (see :mod:`mother.pyramid.demo.serve`); both
databases (:data:`~mother.pyramid.demo.models.GALAXIES`) must be configured first.
"""

from __future__ import annotations

import secrets
from typing import Any

from pyramid.config import Configurator
from pyramid.router import Router

from ... import get_database
from .models import GALAXIES, setup, setup_hangar
from .reports import Reports


def main(global_config: Any = None, **settings: Any) -> Router:
    """The WSGI application (a PasteDeploy ``app_factory``)."""
    settings.setdefault("mother.websession.secret", secrets.token_hex(32))
    settings.setdefault("mother.websession.reissue_time", "60")
    settings.setdefault("jinja2.directories", "mother.pyramid.demo:templates")
    with Configurator(settings=settings) as config:
        config.include("pyramid_jinja2")
        config.include("mother.pyramid")
        setup(get_database("default"))
        for name in GALAXIES:
            setup_hangar(get_database(name))
        config.registry["mother.demo.reports"] = Reports()
        config.add_tween("mother.pyramid.demo.reports.trace_tween_factory",
                         over="pyramid_tm.tm_tween_factory")
        config.set_default_csrf_options(require_csrf=True)
        config.add_static_view("static", "mother.pyramid.demo:static", cache_max_age=3600)
        config.add_route("home", "/")
        config.add_route("add_star", "/stars")
        config.add_route("transfer", "/transfer")
        config.add_route("crash", "/crash")
        config.add_route("forget", "/session/forget")
        config.scan("mother.pyramid.demo.views")
    return config.make_wsgi_app()
