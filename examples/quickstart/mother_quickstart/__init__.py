"""The quickstart application: ``main()`` builds it from the INI file's settings."""

from pyramid.config import Configurator

from .models import create_tables


def main(global_config, **settings):
    """The WSGI application (``use = egg:mother_quickstart`` in development.ini)."""
    with Configurator(settings=settings) as config:
        config.include("pyramid_jinja2")
        config.include("mother.pyramid")      # mother.* settings, pyramid_tm, pyramid_retry
        config.add_route("home", "/")
        config.add_route("add_star", "/stars")
        config.add_route("star", "/stars/{star_id:\\d+}")
        config.scan(".views")
    create_tables()                            # the application makes its own tables
    return config.make_wsgi_app()
