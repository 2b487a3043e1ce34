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
import configparser
import importlib
import json
import logging
import re
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


class CommandError(Exception):
    """A command cannot go on: the message says why and what to change."""


def add_database_options(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """``-c FILE.ini`` (with ``--name``) or ``--dsn``: which database a command works on."""
    parser.add_argument("-c", "--config", metavar="FILE.ini", default=default,
                        help="INI file with a [mother] (or [mother:NAME]) section")
    parser.add_argument("--name", default=default,
                        help="the database name: reads [mother:NAME] (default: default)")
    parser.add_argument("--dsn", default=default,
                        help="postgresql://…, libpq key=value, sqlite:///file.db "
                             "(default: $MOTHER_DSN)")
    parser.add_argument("--create", action="store_true", default=default,
                        help="make the SQLite database file if it does not exist "
                             "(without it, a missing file is an error)")


def _dsn_source(args: argparse.Namespace, section: str) -> str:
    """Where the DSN came from, as the user would fix it."""
    if args.dsn:
        return "the --dsn option"
    if args.config:
        return f"the dsn setting of [{section}] in {args.config} (or --dsn)"
    return "$MOTHER_DSN (or --dsn, or -c FILE.ini)"


def open_database(args: argparse.Namespace) -> Any:
    """Configure the database the options name, then connect once, at once.

    The settings are checked as the application would read them (the same INI
    that ``init_mother`` refuses is refused here); then a single direct
    connection reports a wrong DSN, a server that is down or an unknown role
    as one error that says which setting to fix, before any pool waits.
    """
    from .config import make_settings
    from .database import init_mother

    name = args.name or "default"
    section = "mother" if name == "default" else f"mother:{name}"
    if args.config and name != "default":  # init_mother falls back to [mother]; we do not
        parser = configparser.ConfigParser(interpolation=None)
        if parser.read(args.config) and not parser.has_section(section):
            raise CommandError(f"--name {name}: {args.config} has no [{section}] section "
                               f"(it has {', '.join(parser.sections()) or 'none'})")
    overrides: dict[str, Any] = {"create": bool(getattr(args, "create", False))}
    if args.dsn:
        overrides["dsn"] = args.dsn
    make_settings(args.config, name, **overrides)
    database = init_mother(args.config, name=name, pool_min=1, **overrides)
    check_connection(database, _dsn_source(args, section))
    return database


def check_connection(database: Any, source: str) -> None:
    """Connect once, directly: any failure is one :class:`CommandError` that names the
    database and where its DSN came from (``source``), before a pool retries and waits."""
    try:
        database.dialect.connect().close()
    except Exception as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise CommandError(f"cannot connect to database {database.name!r}: {reason} "
                           f"(the DSN comes from {source})") from error


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
    for number, statement in enumerate(split_statements(script), 1):
        words = statement.split(None, 2)
        keyword = words[0].upper() if words else ""
        if keyword in TRANSACTION_CONTROL or (
                keyword == "PREPARE" and len(words) > 1 and words[1].upper() == "TRANSACTION"):
            raise CommandError(
                f"{args.file}, statement {number} ({' '.join(words[:2])}): mother exec runs the "
                "whole file in one transaction of its own; remove its transaction control "
                "statements (nothing was run)")
    database = open_database(args)
    from .session import MotherSession

    with MotherSession("mother-exec", database=database) as session:
        conn = session.connection()
        database.dialect.begin(conn)
        database.dialect.execute_script(conn, script)
    database.refresh_schema()
    print(f"{args.file}: executed and committed")
    return 0


#: first words of the statements that would end or split ``mother exec``'s transaction
TRANSACTION_CONTROL = frozenset({"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT",
                                 "SAVEPOINT", "RELEASE"})
_TOKEN = re.compile(r"""
    (?P<skip> '(?:[^']|'')*' | "(?:[^"]|"")*" | `(?:[^`]|``)*` | --[^\n]* | /\*.*?\*/
            | (?P<dollar>\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$).*?(?P=dollar) )
  | (?P<semicolon>;)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
""", re.VERBOSE | re.DOTALL)


def split_statements(script: str) -> list[str]:
    """The statements of an SQL script, their comments and quoted text left out.

    Quotes, comments and PostgreSQL dollar quotes are skipped; a ``CREATE``
    statement with a ``BEGIN … END`` body (an SQLite trigger, a PostgreSQL
    ``BEGIN ATOMIC`` function) is one statement, up to its ``END``.
    """
    statements: list[str] = []
    words: list[str] = []
    compound = False
    for match in _TOKEN.finditer(script):
        if match.group("word"):
            word = match.group("word")
            words.append(word)
            if word.upper() == "BEGIN" and words[0].upper() == "CREATE":
                compound = True
        elif match.group("semicolon"):
            if compound and words[-1].upper() != "END":
                continue  # a ';' inside the BEGIN … END body
            if words:
                statements.append(" ".join(words))
            words, compound = [], False
    if words:
        statements.append(" ".join(words))
    return statements


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
    except CommandError as error:
        print(f"mother: error: {error}", file=sys.stderr)
        return 1
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

__all__ = ["COMMANDS", "Command", "CommandError", "add_database_options", "check_connection",
           "main", "open_database", "split_statements"]
