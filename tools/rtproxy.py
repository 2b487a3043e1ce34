"""A TCP proxy that counts the network round trips between PostgreSQL clients and a server.

Point a client at :attr:`RoundTripProxy.port` instead of the server: each
connection is forwarded byte for byte to the server, and counted. A round
trip starts each time a client sends data after it has received data from the
server, or sends for the first time on its connection; what a client sends in
several segments without reading in between counts once. A request with its
answer is one round trip, and so is a whole libpq pipeline::

    with RoundTripProxy("127.0.0.1", 5432) as proxy:
        conn = psycopg.connect(host="127.0.0.1", port=proxy.port, user="postgres")
        proxy.reset()                   # forget the traffic of opening the connection
        conn.execute("SELECT 1")
        assert proxy.round_trips == 1

The proxy sees the order in which data reaches it, not when the client reads
it. The counts are exact for request/answer traffic; a client that goes on
sending while the server already answers (a pipeline larger than the socket
buffers, ``COPY``) counts once more per answer it overlaps, and a message the
server sends unasked (``NOTIFY``) ends the client's turn too.

With ``delay`` the proxy also holds what clients send for that many seconds
before passing it on: a stand-in for ``tc qdisc ... netem delay`` on kernels
built without netem (the whole round-trip delay is added on the way to the
server, as netem on the client's egress would).

Standard library only: one thread serves every connection with
:mod:`selectors`. By hand: ``python tools/rtproxy.py 127.0.0.1:5432 --port
6432`` prints the count of each connection when it closes.
"""

from __future__ import annotations

import argparse
import collections
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

log = logging.getLogger("rtproxy")

CHUNK = 65536
#: waking from select() overshoots by about 0.1 ms on a virtual machine: with a delay, wake
#: this much before data is due and poll until it is
EARLY = 0.0002
#: stop reading a side while this much of its data waits to be written to the other side
BACKLOG = 1 << 20


class Link:
    """One client connection and the server connection it is forwarded to, with its counts."""

    def __init__(self, lock: threading.Lock, client: socket.socket, server: socket.socket,
                 client_address: tuple, record: bool) -> None:
        self._lock = lock
        self.client = client
        self.server = server
        #: the client's address as the proxy sees it (the client socket's own address)
        self.client_address = client_address
        self.record = record
        self.round_trips = 0
        self.bytes_up = 0  # client to server
        self.bytes_down = 0  # server to client
        self.closed = False
        self._requests: list[bytearray] = []
        # True when the client's next data starts a round trip
        self.client_turn = True
        self.to_server = bytearray()
        self.to_client = bytearray()
        #: client data held back by the proxy's delay: (when it is due, data)
        self.held: collections.deque[tuple[float, bytes]] = collections.deque()
        #: the client sent the proxy's ``cut_after`` bytes: the reply is dropped and
        #: the connection cut (the server did the work; the client never hears of it)
        self.cutting = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Link {self.client_address} {self.round_trips} round trips ({state})>"

    @property
    def requests(self) -> list[bytes]:
        """What the client sent, one item per round trip since the last reset (if recording)."""
        with self._lock:
            return [bytes(request) for request in self._requests]

    def reset(self) -> None:
        """Zero this connection's counts (the proxy's total is kept)."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        self.round_trips = self.bytes_up = self.bytes_down = 0
        self._requests.clear()


class RoundTripProxy:
    """Forward connections from a local port to ``(host, port)`` and count their round trips.

    ``listen_port=0`` lets the system choose the port (see :attr:`port`).
    ``on_close`` is called, from the proxy's thread, with each link that closes.
    ``cut_after`` (bytes) makes the proxy drop the server's reply to the request
    containing them and cut that connection: a reply lost after the work was done.
    While ``refusing`` is true, a new connection is closed as soon as it is accepted
    (the server is out of reach, as after a network split).
    """

    def __init__(self, host: str, port: int, *, listen_host: str = "127.0.0.1",
                 listen_port: int = 0, delay: float = 0.0, record: bool = False,
                 connect_timeout: float = 10.0,
                 on_close: Callable[[Link], None] | None = None,
                 cut_after: bytes | None = None) -> None:
        self.upstream = (host, port)
        self.cut_after = cut_after
        self.listen_address = (listen_host, listen_port)
        self.delay = delay
        self.record = record
        self.connect_timeout = connect_timeout
        self.on_close = on_close
        self.refusing = False
        self._lock = threading.Lock()
        self._links: list[Link] = []
        self._total = 0
        self._listener: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._stopping = False
        self._events: dict[socket.socket, int] = {}

    # -- public ------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """The address the proxy listens on."""
        return self._bound()[0]

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        return self._bound()[1]

    @property
    def round_trips(self) -> int:
        """Round trips of every connection (closed ones included) since start or reset."""
        with self._lock:
            return self._total

    @property
    def links(self) -> list[Link]:
        """The connections: open ones, and those closed since the last reset."""
        with self._lock:
            return list(self._links)

    def link_for(self, fileno: int) -> Link:
        """The link of a client socket of this process, given its file descriptor
        (``psycopg.Connection.fileno()``)."""
        sock = socket.socket(fileno=fileno)
        try:
            address = sock.getsockname()
        finally:
            sock.detach()  # the descriptor stays its owner's
        for link in self.links:
            if link.client_address[:2] == address[:2]:
                return link
        raise LookupError(f"no connection from {address} went through this proxy")

    def reset(self) -> None:
        """Zero every count, and forget the connections closed so far."""
        with self._lock:
            self._total = 0
            self._links = [link for link in self._links if not link.closed]
            for link in self._links:
                link._reset()

    def start(self) -> RoundTripProxy:
        """Listen and serve in a background thread."""
        if self._thread is not None:
            raise RuntimeError("the proxy is already started")
        self._stopping = False
        self._listener = socket.create_server(self.listen_address)
        self._listener.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        # select() times in microseconds (epoll and poll in milliseconds), which a delay
        # needs; it takes descriptors below 1024 only, plenty for tests and benchmarks
        self._selector = selectors.SelectSelector()
        self._watch(self._listener, selectors.EVENT_READ, ("listen", None))
        self._watch(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._thread = threading.Thread(target=self._serve, name="rtproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection and socket."""
        if self._thread is None:
            return
        self._stopping = True
        assert self._wake_w is not None
        self._wake_w.send(b"x")
        self._thread.join()
        self._thread = None
        for link in self.links:
            self._close(link)
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._listener = self._wake_r = self._wake_w = None
        if self._selector is not None:
            self._selector.close()
        self._events.clear()

    def __enter__(self) -> RoundTripProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop ----------------------------------------------------------------------
    def _bound(self) -> tuple:
        if self._listener is None:
            raise RuntimeError("the proxy is not started")
        return self._listener.getsockname()

    def _serve(self) -> None:
        assert self._selector is not None
        while not self._stopping:
            events = self._selector.select(self._until_due())
            # data a client sent is already here, so it was sent before the server's answer
            # (read in the same turn of the loop) reached it: it belongs to the turn before
            events.sort(key=lambda event: event[0].data[0] != "client")
            for key, mask in events:
                kind, link = key.data
                if kind == "listen":
                    self._accept()
                elif kind == "wake":
                    key.fileobj.recv(64)
                elif not link.closed:
                    self._service(link, kind, mask)
            self._release_due()

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            client, address = self._listener.accept()
        except BlockingIOError:
            return
        if self.refusing:
            client.close()
            return
        try:
            server = socket.create_connection(self.upstream, timeout=self.connect_timeout)
        except OSError as error:
            log.warning("rtproxy: cannot reach %s:%s: %s", *self.upstream, error)
            client.close()
            return
        for sock in (client, server):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = Link(self._lock, client, server, address, self.record)
        with self._lock:
            self._links.append(link)
        self._update(link)

    def _service(self, link: Link, kind: str, mask: int) -> None:
        sock = link.client if kind == "client" else link.server
        try:
            if mask & selectors.EVENT_WRITE:
                self._send(sock, link.to_client if kind == "client" else link.to_server)
            if mask & selectors.EVENT_READ:
                data = sock.recv(CHUNK)
                if not data:
                    self._close(link)
                    return
                if kind == "client":
                    self._from_client(link, data)
                elif link.cutting:  # the reply is dropped, the connection cut
                    link.to_client.clear()
                    self._close(link)
                    return
                else:
                    self._from_server(link, data)
        except BlockingIOError:
            pass
        except OSError as error:
            log.info("rtproxy: %s: %s", link.client_address, error)
            self._close(link)
            return
        self._update(link)

    def _from_client(self, link: Link, data: bytes) -> None:
        with self._lock:
            if link.client_turn:  # first send, or the server answered since the last one
                link.client_turn = False
                link.round_trips += 1
                self._total += 1
                if link.record:
                    link._requests.append(bytearray())
            link.bytes_up += len(data)
            if self.cut_after is not None and self.cut_after in data:
                link.cutting = True
            if link.record and link._requests:
                link._requests[-1] += data
        if self.delay:
            link.held.append((time.monotonic() + self.delay, data))
        else:
            link.to_server += data
            self._send(link.server, link.to_server)

    def _from_server(self, link: Link, data: bytes) -> None:
        with self._lock:
            link.client_turn = True
            link.bytes_down += len(data)
        link.to_client += data
        self._send(link.client, link.to_client)

    def _until_due(self) -> float | None:
        """Seconds until the earliest held data is due; None when nothing is held."""
        dues = [link.held[0][0] for link in self.links if link.held]
        if not dues:
            return None
        wait = min(dues) - time.monotonic()
        return wait - EARLY if wait > EARLY else 0.0

    def _release_due(self) -> None:
        now = time.monotonic()
        for link in self.links:
            released = False
            while link.held and link.held[0][0] <= now:
                link.to_server += link.held.popleft()[1]
                released = True
            if released and not link.closed:
                try:
                    self._send(link.server, link.to_server)
                except OSError:
                    self._close(link)
                    continue
                self._update(link)

    @staticmethod
    def _send(sock: socket.socket, buffer: bytearray) -> None:
        if buffer:
            try:
                sent = sock.send(buffer)
            except BlockingIOError:
                return
            del buffer[:sent]

    def _update(self, link: Link) -> None:
        """Watch each side for what it can do now: read unless the other side lags, write
        when something waits for it."""
        read, write = selectors.EVENT_READ, selectors.EVENT_WRITE
        upward = len(link.to_server) + sum(len(data) for _, data in link.held)
        self._watch(link.client, (read if upward < BACKLOG else 0)
                    | (write if link.to_client else 0), ("client", link))
        self._watch(link.server, (read if len(link.to_client) < BACKLOG else 0)
                    | (write if link.to_server else 0), ("server", link))

    def _watch(self, sock: socket.socket, events: int, data: tuple) -> None:
        assert self._selector is not None
        current = self._events.get(sock, 0)
        if events == current:
            return
        if not events:
            self._selector.unregister(sock)
            del self._events[sock]
        elif not current:
            self._selector.register(sock, events, data)
            self._events[sock] = events
        else:
            self._selector.modify(sock, events, data)
            self._events[sock] = events

    def _close(self, link: Link) -> None:
        """Pass on what is still waiting (held data too), then close both sides."""
        if link.closed:
            return
        link.to_server += b"".join(data for _, data in link.held)
        link.held.clear()
        for sock, pending in ((link.server, link.to_server), (link.client, link.to_client)):
            if sock.fileno() >= 0:
                if pending:
                    try:
                        sock.settimeout(1.0)
                        sock.sendall(pending)
                    except OSError:
                        pass
                self._watch(sock, 0, ())
                sock.close()
        with self._lock:
            link.closed = True
        if self.on_close is not None:
            self.on_close(link)


def frontend_messages(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The (type, body) of each PostgreSQL frontend message in ``data``. The packets that
    open a connection (startup, SSL request) have no type: they start with a zero byte
    and are skipped."""
    offset = 0
    while offset + 5 <= len(data):
        if data[offset] == 0:
            (length,) = struct.unpack_from("!i", data, offset)
            offset += max(length, 4)
            continue
        kind = data[offset:offset + 1]
        (length,) = struct.unpack_from("!i", data, offset + 1)
        yield kind, data[offset + 5:offset + 1 + length]
        offset += 1 + max(length, 4)


def queries(data: bytes) -> list[str]:
    """The statements in a client's bytes: the text of each simple query and of each parse
    (``PREPARE name: text`` when it names a prepared statement), ``EXECUTE name`` for each
    bind of a prepared statement."""
    found: list[str] = []
    for kind, body in frontend_messages(data):
        fields = [field.decode(errors="replace") for field in body.split(b"\0", 2)]
        if kind == b"Q":
            found.append(fields[0])
        elif kind == b"P" and len(fields) > 1:
            found.append(f"PREPARE {fields[0]}: {fields[1]}" if fields[0] else fields[1])
        elif kind == b"B" and len(fields) > 1 and fields[1]:
            found.append(f"EXECUTE {fields[1]}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description="Forward TCP connections to a PostgreSQL "
                                     "server and count their round trips.")
    parser.add_argument("upstream", help="the server, HOST:PORT")
    parser.add_argument("--listen", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds to hold what clients send (emulated latency)")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")

    def report(link: Link) -> None:
        print(f"{link.client_address[0]}:{link.client_address[1]}: {link.round_trips} round "
              f"trips, {link.bytes_up} bytes up, {link.bytes_down} bytes down", flush=True)

    with RoundTripProxy(host, int(port), listen_host=args.listen, listen_port=args.port,
                        delay=args.delay, on_close=report) as proxy:
        print(f"listening on {proxy.host}:{proxy.port}, forwarding to {args.upstream}",
              flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print(f"total: {proxy.round_trips} round trips")


if __name__ == "__main__":
    main()
