"""``mother demo``: serve the demonstration app with waitress."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ... import init_mother
from .models import GALAXIES

log = logging.getLogger(__name__)


def default_dsn(name: str = "default") -> str:
    """An SQLite file in the user's data directory (created on first run): ``demo.db`` for
    the first database, ``demo-NAME.db`` for another."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    folder = base / "dbmother"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        import tempfile

        folder = Path(tempfile.gettempdir()) / "dbmother"
        folder.mkdir(parents=True, exist_ok=True)
    filename = "demo.db" if name == "default" else f"demo-{name}.db"
    return f"sqlite:///{folder / filename}"


def configure(dsns: Sequence[str] = ()) -> list[str]:
    """Configure the demo's two databases (:data:`~.models.GALAXIES`) and connect to each
    once; the DSNs used. Missing DSNs are the demo's SQLite files."""
    from ...commandline import CommandError, check_connection

    if len(dsns) > len(GALAXIES):
        raise CommandError(f"the demo has {len(GALAXIES)} databases: give --dsn at most "
                           f"{len(GALAXIES)} times")
    used = []
    for index, name in enumerate(GALAXIES):
        dsn = dsns[index] if index < len(dsns) else default_dsn(name)
        source = ("the demo's default (an SQLite file)" if index >= len(dsns)
                  else "the --dsn option" if index == 0 else "the second --dsn option")
        check_connection(init_mother(dsn=dsn, name=name, pool_min=1, pool_max=8), source)
        used.append(dsn)
    return used


def serve(dsns: Sequence[str] = (), host: str = "127.0.0.1", port: int = 6543) -> None:
    """Configure the databases, build the app and serve it until interrupted."""
    from waitress.server import create_server

    from . import main

    used = configure(dsns)
    app = main({})
    server = create_server(app, host=host, port=port, threads=8)
    # types-waitress is wrong here: one host and port give one server, which has effective_port
    url = f"http://{host}:{server.effective_port}/"  # type: ignore[union-attr]
    where = "\n".join(f"  {GALAXIES[name]} ({name}): {dsn}" for name, dsn in zip(GALAXIES, used))
    print(f"dbmother demo on two databases:\n{where}\nServing at {url}  (Ctrl+C to stop)",
          flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def run(args: argparse.Namespace) -> int:
    """Serve with the options of ``mother demo`` (declared by :func:`mother.cli.demo_arguments`):
    ``--dsn`` before ``demo`` names the first database, each ``--dsn`` after it the next."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    first = getattr(args, "dsn", None)
    serve([*([first] if first else []), *getattr(args, "dsns", [])], args.host, args.port)
    return 0
