"""The ``mother`` command line: ``map``, ``check``, ``exec FILE.sql``, ``recover``, ``demo``.

Built the ordinary argparse way. :func:`build_parser` declares every
subcommand and its options; the options that name a database (``-c``,
``--name``, ``--dsn``, ``--create``) come from one parent parser
(:func:`database_options`), so they are the same everywhere and may be given
before or after the subcommand; each subcommand's ``set_defaults(func=…)``
names the function that runs it (``func(args) -> exit status``). Adding a
command is a few lines in :func:`build_parser`::

    sub = commands.add_parser("stats", parents=[common], help="…", description="…")
    sub.add_argument("--top", type=int, default=10)
    sub.set_defaults(func=run_stats)

Errors print one line, ``mother: error: …``, on stderr and exit with status 1;
usage errors exit with status 2.
"""

from __future__ import annotations

import argparse
import configparser
import json
import logging
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any, TextIO

from .commandline import CommandError, check_connection
from .config import make_settings
from .database import close_all, init_mother
from .tm import recovery

log = logging.getLogger(__name__)


def database_options(default: Any = None) -> argparse.ArgumentParser:
    """The parent parser of ``-c FILE.ini`` (with ``--name``), ``--dsn`` and ``--create``:
    which database a command works on.

    The main parser takes them with ``default=None``; the subcommands take them
    with ``default=argparse.SUPPRESS``, so that an option given after the
    subcommand wins and one given before it is not reset.
    """
    parser = argparse.ArgumentParser(add_help=False)
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
    return parser


def demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``mother demo`` (read by ``mother.pyramid.demo.serve.run``).

    ``--dsn`` may also come before ``demo``, as for every command.
    """
    parser.add_argument("--dsn", action="append", dest="dsns", default=argparse.SUPPRESS,
                        help="the first database, then (given again) the second; default: "
                             "SQLite files in the user data dir")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=6543, help="port (default 6543, 0: any)")


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
    name = args.name or "default"
    section = "mother" if name == "default" else f"mother:{name}"
    if args.config and name != "default":  # init_mother falls back to [mother]; we do not
        parser = configparser.ConfigParser(interpolation=None)
        if parser.read(args.config) and not parser.has_section(section):
            raise CommandError(f"--name {name}: {args.config} has no [{section}] section "
                               f"(it has {', '.join(parser.sections()) or 'none'})")
    overrides: dict[str, Any] = {"create": bool(args.create)}
    if args.dsn:
        overrides["dsn"] = args.dsn
    make_settings(args.config, name, **overrides)
    database = init_mother(args.config, name=name, pool_min=1, **overrides)
    check_connection(database, _dsn_source(args, section))
    return database


# -- mother map -------------------------------------------------------------------------------
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


def run_map(args: argparse.Namespace) -> int:
    schema = open_database(args).schema
    if args.json:
        json.dump(schema.as_dict(), sys.stdout, indent=2)
        print()
    else:
        describe_schema(schema, sys.stdout)
    return 0


# -- mother check -----------------------------------------------------------------------------
def run_check(args: argparse.Namespace) -> int:
    database = open_database(args)
    dialect = database.dialect
    conn = dialect.connect()
    try:
        version = dialect.server_version(conn)
        twophase = dialect.supports_twophase(conn)
        fingerprint = dialect.schema_fingerprint(conn)
    finally:
        conn.close()
    print(f"database {database.name!r}: connected ({dialect.name})")
    print(f"server: {version}")
    print(f"prepared transactions: {'enabled' if twophase else 'disabled'}")
    # what processes with schema_check compare (Database.schema_fingerprint)
    print(f"schema fingerprint: {fingerprint}")
    return 0


# -- mother exec ------------------------------------------------------------------------------
def run_exec(args: argparse.Namespace) -> int:
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


# -- mother demo ------------------------------------------------------------------------------
def run_demo(args: argparse.Namespace) -> int:
    """Serve the demonstration app (imported only now: it needs the ``pyramid`` extra).

    Pyramid, imported, warns that setuptools' ``pkg_resources`` is deprecated: a line
    about Pyramid's own imports that the demo's user can do nothing about, not shown.
    """
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated",
                            category=UserWarning)
    from .pyramid.demo import serve

    return serve.run(args)


# -- the parser -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``mother`` parser: every subcommand, its options and the function that runs it."""
    parser = argparse.ArgumentParser(prog="mother", description="dbmother's command line",
                                     parents=[database_options()])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = database_options(argparse.SUPPRESS)

    def command(name: str, help_text: str, *parents: argparse.ArgumentParser
                ) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=list(parents), help=help_text,
                                   description=help_text)

    sub = command("map", "print the schema: tables, columns, keys, links", common)
    sub.add_argument("--json", action="store_true", help="print the schema as JSON")
    sub.set_defaults(func=run_map)

    sub = command("check", "connect; print the server version, whether it can prepare "
                  "transactions and the schema's fingerprint", common)
    sub.set_defaults(func=run_check)

    sub = command("exec", "run an SQL file in one transaction", common)
    sub.add_argument("file", metavar="FILE.sql", help="SQL script, run in one transaction")
    sub.set_defaults(func=run_exec)

    sub = command("recover", "resolve the in-doubt prepared transactions a crash left")
    recovery.build_parser(sub)
    sub.set_defaults(func=recovery.run)

    sub = command("demo", "serve the demonstration web app (embedded SQLite unless --dsn)")
    demo_arguments(sub)
    sub.set_defaults(func=run_demo)
    return parser


def _error_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mother`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # usage errors (argparse printed them) and --help
        return exit.code if isinstance(exit.code, int) else 2
    try:
        status: int = args.func(args)
        return status
    except SystemExit as exit:  # a command that exits: its message is shown, as Python would
        if isinstance(exit.code, int) or exit.code is None:
            return exit.code or 0
        print(f"mother: error: {exit.code}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mother: interrupted", file=sys.stderr)
        return 130
    except CommandError as error:
        print(f"mother: error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # one clear line, not a traceback
        log.debug("mother %s failed", args.command, exc_info=True)
        print(f"mother: error: {_error_line(error)}", file=sys.stderr)
        return 1
    finally:
        close_all()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["CommandError", "build_parser", "check_connection", "database_options",
           "demo_arguments", "main", "open_database", "run_check", "run_demo", "run_exec",
           "run_map", "split_statements"]
