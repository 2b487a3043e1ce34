"""``mother demo``: serve the demonstration app with waitress."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from ... import init_mother

log = logging.getLogger(__name__)


def default_dsn() -> str:
    """An SQLite file in the user's data directory (created on first run)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    folder = base / "dbmother"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        import tempfile

        folder = Path(tempfile.gettempdir()) / "dbmother"
        folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'demo.db'}"


def serve(dsn: str | None = None, host: str = "127.0.0.1", port: int = 6543) -> None:
    """Configure the database, build the app and serve it until interrupted."""
    from waitress.server import create_server

    from ...cli import check_connection
    from . import main

    source = "the --dsn option" if dsn else "the demo's default (an SQLite file)"
    dsn = dsn or default_dsn()
    check_connection(init_mother(dsn=dsn, pool_min=1, pool_max=8), source)
    app = main({})
    server = create_server(app, host=host, port=port, threads=8)
    # types-waitress is wrong here: one host and port give one server, which has effective_port
    url = f"http://{host}:{server.effective_port}/"  # type: ignore[union-attr]
    print(f"dbmother demo on {dsn}\nServing at {url}  (Ctrl+C to stop)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def build_parser(parser: argparse.ArgumentParser) -> None:
    """The options of ``mother demo``."""
    parser.add_argument("--dsn", help="database (default: an SQLite file in the user data dir)")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=6543, help="port (default 6543, 0: any)")


def run(args: argparse.Namespace) -> int:
    """Serve with the parsed options (the ``mother demo`` subcommand)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    serve(args.dsn, args.host, args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m mother.pyramid.demo [--dsn DSN] [--port N] [--host H]``."""
    parser = argparse.ArgumentParser(prog="mother demo", description=__doc__)
    build_parser(parser)
    return run(parser.parse_args(argv))



if __name__ == "__main__":
    raise SystemExit(main())
