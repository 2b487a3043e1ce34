"""The unit of work over a network with latency: a dbmother session against raw psycopg.

Run by hand, as root (it makes a network namespace)::

    .venv/bin/python -m benchmarks.bench_latency [--delay 1ms] [--n 300]

Topology, made here and removed at the end (also after an error, Ctrl-C or
SIGTERM; what a crashed run left is removed at start)::

    root namespace: this script (client)         namespace "mobench": server
    mobench0 10.250.42.1/30  <====== veth ======>  mobench1 10.250.42.2/30
      egress: netem delay DELAY                      postgres, port 54330

The server is a throwaway PostgreSQL cluster (data under /tmp/dbmother-latency,
fsync off, max_prepared_transactions 8) started inside the namespace with the
machine's binaries, as the postgres user, listening on the veth address only;
the client stays in the root namespace, so every statement crosses the veth
pair. ``tc qdisc add dev mobench0 root netem delay DELAY`` on the client's
side adds DELAY to each round trip.

A kernel built without netem (``CONFIG_NET_SCH_NETEM`` unset) refuses that
qdisc. Then (or with ``--emulation proxy``) the client's bytes are held for
DELAY in user space instead, by ``tools/rtproxy.py`` in the root namespace
between the client and the veth; the timed runs then also pay the proxy's own
cost per round trip, which the measured round-trip time shows.

What it measures: the round-trip time (a TCP handshake over the veth path and
a ``SELECT 1`` over the timed path); the unit of work of
``benchmarks/bench_uow.py`` ("load one row by key, change a column, add two
child rows, commit": its ``with_session`` and ``by_hand``) in turns
(``timing.interleaved``), median time per unit of work; and the round trips
per unit of work, counted in a separate pass through ``tools/rtproxy.py``
(without delay) after a warm-up.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

import mother
from benchmarks import bench_uow
from benchmarks.timing import fresh, interleaved
from tools.rtproxy import RoundTripProxy, queries

NAMESPACE = "mobench"
HOST_IF, NS_IF = "mobench0", "mobench1"
CLIENT_IP, SERVER_IP, PREFIX = "10.250.42.1", "10.250.42.2", 30
PORT = 54330
BASE = Path("/tmp/dbmother-latency")
DATA = BASE / "data"
DBNAME = "mother_bench"
#: warm-up and counted runs of the counting pass
COUNT_WARMUP, COUNT_RUNS = 10, 50


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if check and result.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): "
                           f"{(result.stderr or result.stdout).strip()}")
    return result


def pg_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        sys.exit(f"no PostgreSQL '{name}' binary on this machine")
    return str(candidates[-1])


def as_postgres(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd]


def in_namespace(*cmd: str) -> list[str]:
    return ["ip", "netns", "exec", NAMESPACE, *cmd]


def parse_delay(text: str) -> float:
    """``1ms``, ``500us``, ``0.002s`` or a bare number of milliseconds, in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(us|ms|s)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a delay: {text!r} (say 1ms, 500us, 0)")
    return float(match.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[match.group(2) or "ms"]


# -- setting up and tearing down ---------------------------------------------------------------
def cleanup(verbose: bool = True) -> None:
    """Remove the server, namespace and veth pair of this or an earlier (crashed) run."""
    def say(what: str) -> None:
        if verbose:
            print(f"cleanup: {what}")

    if (DATA / "postmaster.pid").exists():
        run(*as_postgres(pg_binary("pg_ctl"), "-D", str(DATA), "-m", "immediate", "-w",
                         "stop"), check=False)
        say("stopped the benchmark's PostgreSQL server")
    if BASE.exists():
        shutil.rmtree(BASE, ignore_errors=True)
        say(f"removed {BASE}")
    if NAMESPACE in run("ip", "netns", "list").stdout.split():
        run("ip", "netns", "del", NAMESPACE, check=False)  # takes its end of the veth pair along
        say(f"removed network namespace {NAMESPACE}")
    if run("ip", "link", "show", HOST_IF, check=False).returncode == 0:
        run("ip", "link", "del", HOST_IF, check=False)
        say(f"removed interface {HOST_IF}")


def leftovers() -> list[str]:
    """What of the benchmark's setup still exists (nothing, after a cleanup)."""
    found = []
    if NAMESPACE in run("ip", "netns", "list").stdout.split():
        found.append(f"namespace {NAMESPACE}")
    if run("ip", "link", "show", HOST_IF, check=False).returncode == 0:
        found.append(f"interface {HOST_IF}")
    if BASE.exists():
        found.append(str(BASE))
    if run("pgrep", "-f", f"postgres -D {DATA}", check=False).returncode == 0:
        found.append("a postgres server on " + str(DATA))
    return found


def make_network(delay: float, emulation: str) -> str:
    """The namespace and veth pair; the delay as netem if asked and possible. Returns how the
    delay is made: "netem", "proxy" or "none"."""
    if run("ip", "-o", "addr", "show", "to", f"{CLIENT_IP}/{PREFIX}").stdout.strip():
        sys.exit(f"{CLIENT_IP}/{PREFIX} is already in use on this machine: edit CLIENT_IP")
    run("ip", "netns", "add", NAMESPACE)
    run("ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF, "netns", NAMESPACE)
    run("ip", "addr", "add", f"{CLIENT_IP}/{PREFIX}", "dev", HOST_IF)
    run("ip", "link", "set", HOST_IF, "up")
    run(*in_namespace("ip", "addr", "add", f"{SERVER_IP}/{PREFIX}", "dev", NS_IF))
    run(*in_namespace("ip", "link", "set", NS_IF, "up"))
    run(*in_namespace("ip", "link", "set", "lo", "up"))
    if delay == 0:
        return "none"
    if emulation in ("auto", "netem"):
        result = run("tc", "qdisc", "add", "dev", HOST_IF, "root", "netem", "delay",
                     f"{round(delay * 1e6)}us", check=False)
        if result.returncode == 0:
            return "netem"
        if emulation == "netem":
            raise RuntimeError(f"tc netem refused: {result.stderr.strip()}")
        print(f"tc qdisc ... netem refused ({result.stderr.strip()}): this kernel has no netem; "
              "the delay is made in user space by tools/rtproxy.py instead")
    return "proxy"


def start_server() -> None:
    """A throwaway cluster inside the namespace, listening on the veth address only."""
    BASE.mkdir(parents=True)
    shutil.chown(BASE, "postgres", "postgres")
    run(*as_postgres(pg_binary("initdb"), "-D", str(DATA), "-U", "postgres", "--auth=trust",
                     "-E", "UTF8", "--no-sync"))
    with open(DATA / "pg_hba.conf", "a") as hba:
        hba.write(f"host all all {CLIENT_IP}/32 trust\n")
    options = " ".join([f"-c listen_addresses={SERVER_IP}", f"-p {PORT}", "-c fsync=off",
                        "-c synchronous_commit=off", "-c full_page_writes=off",
                        "-c max_prepared_transactions=8", f"-c unix_socket_directories={BASE}"])
    run(*in_namespace(*as_postgres(pg_binary("pg_ctl"), "-D", str(DATA), "-l",
                                   str(BASE / "server.log"), "-o", options, "-w", "start")))


@contextmanager
def terminated_cleanly() -> Iterator[None]:
    """Make SIGTERM and SIGHUP unwind like Ctrl-C, so that ``finally`` blocks run."""
    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


# -- measuring ---------------------------------------------------------------------------------
def dsn(host: str, port: int, dbname: str = DBNAME) -> str:
    return f"host={host} port={port} user=postgres dbname={dbname} sslmode=disable"


def handshake_ms(host: str, port: int, times: int = 50) -> float:
    """Median time of a TCP connect (SYN, SYN-ACK: one round trip)."""
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        socket.create_connection((host, port), timeout=5).close()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def select1_ms(conninfo: str, times: int = 200) -> float:
    """Median time of ``SELECT 1`` on an open connection (one round trip)."""
    with psycopg.connect(conninfo, autocommit=True, prepare_threshold=None) as conn:
        samples = []
        for _ in range(times):
            start = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def counted(proxy: RoundTripProxy,
            work: Callable[[int], None]) -> tuple[float, list[int], list[list[str]]]:
    """Round trips per call of ``work`` through ``proxy``: the mean of the counted runs
    (after the warm-up runs, which open the connections), the count of each warm-up run,
    and what each round trip of one more call carried."""
    texts: dict[tuple[int, str], str] = {}  # (link, prepared statement name) -> its text

    def statements() -> list[list[str]]:
        trips = []
        for link in proxy.links:
            for request in link.requests:
                trip = []
                for statement in queries(request):
                    if statement.startswith("PREPARE "):
                        name, text = statement.removeprefix("PREPARE ").split(": ", 1)
                        texts[id(link), name] = text
                        statement = f"(prepare {name}) {text}"
                    elif statement.startswith("EXECUTE "):
                        name = statement.split()[1]
                        statement = f"({name}) {texts.get((id(link), name), '?')}"
                    trip.append(statement)
                trips.append(trip)
        return trips

    warmup = []
    for i in range(COUNT_WARMUP):
        before = proxy.round_trips
        work(i)
        warmup.append(proxy.round_trips - before)
    statements()  # learn the texts of the statements prepared so far
    links = {id(link) for link in proxy.links}
    proxy.reset()
    for i in range(COUNT_RUNS):
        work(i)
    per_unit = proxy.round_trips / COUNT_RUNS
    if {id(link) for link in proxy.links} - links:
        print("warning: a connection was opened during the counting pass (counted)")
    statements()
    proxy.reset()
    work(0)
    return per_unit, warmup, statements()


def psycopg_pool_for(conninfo: str) -> psycopg_pool.ConnectionPool:
    return psycopg_pool.ConnectionPool(conninfo, min_size=1, max_size=2,
                                       kwargs={"row_factory": dict_row}, open=True)


def count_round_trips(host: str, port: int, numbers: Iterator[int]
                      ) -> dict[str, tuple[float, list[int], list[list[str]]]]:
    """The counting pass: each contender in turn through an undelayed counting proxy."""
    with RoundTripProxy(host, port, record=True) as proxy:
        proxied = dsn(proxy.host, proxy.port)
        mother.init_mother(dsn=proxied, pool_min=1, pool_max=2)
        pool = psycopg_pool_for(proxied)
        try:
            return {"dbmother session": counted(proxy, fresh(bench_uow.with_session, numbers)),
                    "raw psycopg": counted(proxy, fresh(bench_uow.by_hand(pool), numbers))}
        finally:
            pool.close()
            mother.close_all()


def time_units(conninfo: str, n: int, numbers: Iterator[int]) -> dict[str, float]:
    """Median microseconds per unit of work of both contenders, in turns."""
    database = bench_uow.setup(conninfo)
    pool = psycopg_pool_for(conninfo)
    try:
        return interleaved({"dbmother session": fresh(bench_uow.with_session, numbers),
                            "raw psycopg": fresh(bench_uow.by_hand(pool), numbers)}, n)
    finally:
        pool.close()
        database.close()


def shorten(statement: str, width: int = 60) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def benchmark(delay: float, emulation: str, n: int) -> None:
    how = make_network(delay, emulation)
    start_server()
    with psycopg.connect(dsn(SERVER_IP, PORT, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DBNAME}"')
        server_version = conn.execute("SHOW server_version").fetchone()[0]
    delayer = None
    if how == "proxy":
        delayer = RoundTripProxy(SERVER_IP, PORT, delay=delay).start()
        timed = dsn(delayer.host, delayer.port)
    else:
        timed = dsn(SERVER_IP, PORT)
    try:
        rtt_handshake = handshake_ms(SERVER_IP, PORT)
        rtt_select = select1_ms(timed)
        numbers = itertools.count(1000)
        times = time_units(timed, n, numbers)
        counts = count_round_trips(SERVER_IP, PORT, numbers)
    finally:
        if delayer is not None:
            delayer.stop()

    made = {"netem": f"tc netem delay on {HOST_IF} (client egress)",
            "proxy": "held by tools/rtproxy.py in user space (no netem in this kernel)",
            "none": "none"}[how]
    print()
    print('unit of work "load one row by key, change a column, add two child rows, commit"')
    print(f"  {datetime.date.today()}, Python {platform.python_version()}, psycopg "
          f"{psycopg.__version__}, psycopg_pool {psycopg_pool.__version__}, "
          f"PostgreSQL {server_version}")
    print(f"  network: veth pair {HOST_IF} (root namespace) <-> {NS_IF} (namespace {NAMESPACE})")
    print(f"  added delay: {delay * 1e3:g} ms, {made}")
    print(f"  round-trip time: TCP handshake over the veth {rtt_handshake:.3f} ms; "
          f"SELECT 1 over the timed path {rtt_select:.3f} ms (medians)")
    print(f"  timed: {n} units of work each, in turns, after 100 warm-up rounds; median")
    print(f"  round trips: separate counting pass through tools/rtproxy.py (no delay), "
          f"{COUNT_RUNS} units each after {COUNT_WARMUP} warm-up units")
    print()
    raw = times["raw psycopg"]
    print(f"  {'contender':<18} {'per unit':>10} {'vs raw':>7} {'round trips':>12}")
    for name, micros in times.items():
        print(f"  {name:<18} {micros / 1e3:>7.2f} ms {micros / raw:>7.2f} "
              f"{counts[name][0]:>12.2f}")
    for name, (_, warmup, trips) in counts.items():
        print(f"\n  {name}: round trips of the warm-up units (the first may include "
              f"opening a connection and reading the schema): {warmup}")
        print("  one unit of work, round trip by round trip:")
        for number, trip in enumerate(trips, 1):
            print(f"    {number}. " + "; ".join(shorten(statement) for statement in trip))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=parse_delay, default=parse_delay("1ms"),
                        help="added round-trip delay (default 1ms; 0 for the bare veth)")
    parser.add_argument("--n", type=int, default=300, help="timed units of work per contender")
    parser.add_argument("--emulation", choices=("auto", "netem", "proxy"), default="auto",
                        help="how the delay is made (auto: netem if the kernel has it)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_latency.py makes a network namespace: run it as root")
    cleanup()
    try:
        with terminated_cleanly():
            benchmark(args.delay, args.emulation, args.n)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        mother.close_all()
        cleanup(verbose=False)
        left = leftovers()
        print("cleanup: left " + ", ".join(left) if left
              else "cleanup: no namespace, veth, qdisc, server or data directory left")


if __name__ == "__main__":
    main()
