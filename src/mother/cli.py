"""The ``mother`` command line: ``mother map``, ``mother check``, ``mother exec FILE.sql``.

Every subcommand is a :class:`Command` (``add_arguments(parser)`` and
``run(args) -> exit status``). Built-in ones live here; others are named in
:data:`COMMANDS` as ``"module:attribute"`` (a Command) or ``"module"`` (a
module with ``build_parser(parser)`` and ``run(args)`` that reads its own
options) and imported only when chosen, so adding one is a one-line edit::

    "recover": ("resolve in-doubt prepared transactions", "mother.tm.recovery"),

Errors print one line, ``mother: error: …``, on stderr and exit with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Command:
    """One subcommand: how it reads its arguments and what it does."""

    add_arguments: Callable[[argparse.ArgumentParser], Any]
    run: Callable[[argparse.Namespace], int]
    #: give the subcommand the common -c/--name/--dsn options
    database_options: bool = True


def add_database_options(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """``-c FILE.ini`` (with ``--name``) or ``--dsn``: which database a command works on."""
    parser.add_argument("-c", "--config", metavar="FILE.ini", default=default,
                        help="INI file with a [mother] (or [mother:NAME]) section")
    parser.add_argument("--name", default=default,
                        help="the database name: reads [mother:NAME] (default: default)")
    parser.add_argument("--dsn", default=default,
                        help="postgresql://…, libpq key=value, sqlite:///file.db "
                             "(default: $MOTHER_DSN)")


def open_database(args: argparse.Namespace) -> Any:
    """Configure the database the options name (one pooled connection is enough here)."""
    from .database import init_mother

    overrides: dict[str, Any] = {"pool_min": 1}
    if args.dsn:
        overrides["dsn"] = args.dsn
    return init_mother(args.config, name=args.name or "default", **overrides)


# -- mother map -------------------------------------------------------------------------------
def _map_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the schema as JSON")


def describe_schema(schema: Any, out: TextIO) -> None:
    """The schema as readable text: tables with columns and keys, then the link tables."""
    for table in schema.tables.values():
        print(table.name, file=out)
        for column in table.columns.values():
            marks = []
            if column.name in table.primary_key:
                marks.append("primary key")
            if not column.nullable:
                marks.append("not null")
            if column.has_default:
                marks.append("default")
            extra = f" ({', '.join(marks)})" if marks else ""
            print(f"    {column.name}  {column.type}{extra}", file=out)
        if len(table.primary_key) > 1:
            print(f"    primary key ({', '.join(table.primary_key)})", file=out)
        for fk in table.foreign_keys:
            print(f"    ({', '.join(fk.columns)}) -> {fk.ref_table}"
                  f"({', '.join(fk.ref_columns)})", file=out)
    if schema.links:
        print("links", file=out)
        for link in schema.links:
            print(f"    {link.left.ref_table} <-> {link.right.ref_table} through {link.table}",
                  file=out)


def _map_run(args: argparse.Namespace) -> int:
    schema = open_database(args).schema
    if args.json:
        json.dump(schema.as_dict(), sys.stdout, indent=2)
        print()
    else:
        describe_schema(schema, sys.stdout)
    return 0


# -- mother check -----------------------------------------------------------------------------
def _check_run(args: argparse.Namespace) -> int:
    database = open_database(args)
    dialect = database.dialect
    conn = dialect.connect()
    try:
        version = dialect.server_version(conn)
        twophase = dialect.supports_twophase(conn)
    finally:
        conn.close()
    print(f"database {database.name!r}: connected ({dialect.name})")
    print(f"server: {version}")
    print(f"prepared transactions: {'enabled' if twophase else 'disabled'}")
    return 0


# -- mother exec ------------------------------------------------------------------------------
def _exec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE.sql", help="SQL script, run in one transaction")


def _exec_run(args: argparse.Namespace) -> int:
    with open(args.file, encoding="utf-8") as handle:
        script = handle.read()
    database = open_database(args)
    from .session import MotherSession

    with MotherSession("mother-exec", database=database) as session:
        conn = session.connection()
        database.dialect.begin(conn)
        database.dialect.execute_script(conn, script)
    database.refresh_schema()
    print(f"{args.file}: executed and committed")
    return 0


BUILTIN: dict[str, Command] = {
    "map": Command(_map_arguments, _map_run),
    "check": Command(lambda parser: None, _check_run),
    "exec": Command(_exec_arguments, _exec_run),
}

#: subcommand -> (one-line help, a Command or "module:attribute" naming one)
COMMANDS: dict[str, tuple[str, Command | str]] = {
    "map": ("print the schema: tables, columns, keys, links", BUILTIN["map"]),
    "check": ("connect; print the server version and whether it can prepare transactions",
              BUILTIN["check"]),
    "exec": ("run an SQL file in one transaction", BUILTIN["exec"]),
    "recover": ("resolve the in-doubt prepared transactions a crash left",
                "mother.tm.recovery"),
    "demo": ("serve the demonstration web app (embedded SQLite unless --dsn)",
             "mother.pyramid.demo.serve"),
}


def resolve(target: Command | str) -> Command:
    """The Command itself, or the one a ``"module:attribute"`` string names (imported now)."""
    if isinstance(target, Command):
        return target
    module, _, attribute = target.partition(":")
    if attribute:
        return getattr(importlib.import_module(module), attribute)
    loaded = importlib.import_module(module)
    return Command(loaded.build_parser, loaded.run, database_options=False)


def build_parser(chosen: str | None) -> tuple[argparse.ArgumentParser, Command | None]:
    """The argument parser; only the chosen subcommand's module is imported."""
    parser = argparse.ArgumentParser(prog="mother", description="dbmother's command line")
    add_database_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    command = None
    for name, (help_text, target) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            command = resolve(target)
            if command.database_options:
                add_database_options(sub, default=argparse.SUPPRESS)
            command.add_arguments(sub)
    return parser, command


def _error_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mother`` command; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = next((arg for arg in args_list if arg in COMMANDS), None)
    try:
        parser, command = build_parser(chosen)
        args = parser.parse_args(args_list)
        if command is None:  # pragma: no cover - argparse refuses unknown commands
            parser.error("choose a command")
        return command.run(args)
    except SystemExit as exit:
        return int(exit.code or 0) if not isinstance(exit.code, str) else 2
    except KeyboardInterrupt:
        print("mother: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # one clear line, not a traceback
        log.debug("mother %s failed", chosen, exc_info=True)
        print(f"mother: error: {_error_line(error)}", file=sys.stderr)
        return 1
    finally:
        if "mother.database" in sys.modules:
            from .database import close_all

            close_all()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["COMMANDS", "Command", "add_database_options", "main", "open_database"]
