"""Reads on the replicas for GET and HEAD requests, each client reading its own writes.

With ``mother.replica_reads = auto``, :func:`~mother.pyramid.get_session` gives a GET or
HEAD request a read-only session on a replica of each database with ``replicas`` (a
database without them gives the usual session), made with ``after=`` the position of
this client's last write to that database, which travels in a small signed cookie: the
response of a request whose transaction wrote sets it (response callbacks run after
pyramid_tm has committed). A view that writes on GET says so with the view option
``mother_writes=True``. See :doc:`/replicas`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from webob.cookies import SignedSerializer

from ..config import as_bool, as_int, as_text
from ..database import get_database
from ..errors import ArgumentError, ConfigError
from ..replicas import WalPosition

#: ``mother.replica_reads``, and the prefix of its options
SETTING = "mother.replica_reads"
#: the request methods that read on the replicas
READING = frozenset({"GET", "HEAD"})
#: ``request.environ`` key set for the views that write on GET (``mother_writes=True``)
WRITES = "mother.writes"
#: the registry key of the :class:`ReplicaReads` in use
KEY = "mother.replica_reads"
#: the options of ``mother.replica_reads.*`` and their converters
OPTIONS: dict[str, Callable[[str, Any], Any]] = {
    "secret": as_text, "cookie_name": as_text, "max_age": as_int, "secure": as_bool}


@dataclasses.dataclass(frozen=True)
class ReplicaReads:
    """How GET and HEAD requests read (``mother.replica_reads.*``)."""

    #: signs the cookie (required)
    secret: str
    cookie_name: str = "mother_wal"
    #: seconds the cookie lives: longer than any replica lags
    max_age: int = 300
    secure: bool = False

    @functools.cached_property
    def signer(self) -> SignedSerializer:
        return SignedSerializer(self.secret, "mother.replica_reads", serializer=_Json())

    def positions(self, request: Request) -> dict[str, WalPosition]:
        """The positions of the client's last writes, by database, from its cookie (none when
        it is missing, or its signature or content is wrong)."""
        text = request.cookies.get(self.cookie_name)
        if not text:
            return {}
        try:
            found = self.signer.loads(text.encode("ascii"))
            return {str(name): WalPosition.parse(str(position))
                    for name, position in dict(found).items()}
        except (ValueError, TypeError, UnicodeError, ArgumentError):
            return {}

    def remember(self, request: Request, response: Response,
                 written: Mapping[str, WalPosition]) -> None:
        """Set the cookie: ``written`` over the positions the client sent."""
        positions = {**self.positions(request), **written}
        value = self.signer.dumps({name: str(p) for name, p in positions.items()})
        response.set_cookie(self.cookie_name, value.decode("ascii"), max_age=self.max_age,
                            path="/", secure=self.secure, httponly=True, samesite="Lax")


class _Json:
    """webob's serializer protocol, for a dict of strings."""

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


def replica_reads_settings(settings: Mapping[str, Any]) -> ReplicaReads | None:
    """The ``mother.replica_reads`` setting (``auto`` or ``off``, the default) and its
    options, checked; None when off."""
    mode = str(settings.get(SETTING) or "off").strip().lower()
    options: dict[str, Any] = {}
    for key, value in settings.items():
        if key.startswith(SETTING + "."):
            option = key[len(SETTING) + 1:]
            if option not in OPTIONS:
                raise ConfigError(key, value, f"unknown option (known: {', '.join(OPTIONS)})")
            options[option] = OPTIONS[option](key, value)
    if mode not in ("auto", "off"):
        raise ConfigError(SETTING, settings.get(SETTING), "expected auto or off")
    if mode == "off":
        return None
    if not options.get("secret"):
        raise ConfigError(SETTING + ".secret", options.get("secret"),
                          "required with mother.replica_reads = auto (it signs the cookie)")
    return ReplicaReads(**options)


def reads_on_replica(request: Request, database: str) -> ReplicaReads | None:
    """How this request reads ``database``, when it reads on its replicas (None: it may
    write; always for a database without ``replicas``)."""
    reads: ReplicaReads | None = request.registry.get(KEY)
    if (reads is None or request.method not in READING or request.environ.get(WRITES)
            or get_database(database).replicas is None):
        return None
    return reads


def remember_writes(request: Request, sessions: Callable[[], list[Any]]) -> None:
    """Have the response set the cookie if the request's transactions wrote: ``sessions``
    gives the request's sessions once they have committed."""
    reads: ReplicaReads | None = request.registry.get(KEY)
    if reads is None or getattr(request, "_mother_remembers", False):
        return
    request._mother_remembers = True

    def callback(request: Request, response: Response) -> None:
        written: dict[str, WalPosition] = {}
        for session in sessions():  # the latest position of each database
            name, position = session.database.name, session.commit_position
            if position is not None and position > written.get(name, -1):
                written[name] = position
        if written:
            reads.remember(request, response, written)

    request.add_response_callback(callback)


def mother_writes(view: Callable[..., Any], info: Any) -> Callable[..., Any]:
    """The view deriver of the ``mother_writes`` view option: a view registered with
    ``mother_writes=True`` gets a session that may write, whatever the request method."""
    if not info.options.get("mother_writes"):
        return view

    def writing_view(context: Any, request: Request) -> Any:
        request.environ[WRITES] = True
        return view(context, request)

    return writing_view


mother_writes.options = ("mother_writes",)  # type: ignore[attr-defined]
