"""Threads: Mother's two-thread scenario and many threads with random rollbacks."""

from __future__ import annotations

import random
import threading

from mother import MO_SAVE, MotherPoolStatus, MotherSession, close_all, init_mother, tutorial
from tests.support.classes import ClsPlanets, ClsStars


def names_stored(database) -> set[str]:
    with MotherSession(database=database) as session:
        return {row["star_name"] for row in session.mr_query("SELECT star_name FROM stars")}


def test_two_threads_a_commits_b_rolls_back(dsn: str) -> None:
    """Thread A inserts in its session, thread B inserts in its own and rolls back, A ends:
    A's rows are stored, B's are not. (SQLite serializes writers, so there B's insert
    waits for A's session to end.)"""
    database = init_mother(dsn=dsn, pool_min=1, pool_max=4, pool_timeout=30)
    tutorial.create(database)
    concurrent = database.dialect.concurrent_writes
    a_inserted, b_rolled_back = threading.Event(), threading.Event()
    steps: list[str] = []
    errors: list[BaseException] = []

    def thread_a() -> None:
        try:
            # each insert is sent at once: the rows (and SQLite's write lock) are held
            session = MotherSession("ThreadA", defer_writes=False)
            sun = ClsStars({"star_name": "A-sun"}, MO_SAVE, session=session)
            ClsPlanets({"star_id": sun.getField("star_id"), "planet_name": "A-earth"}, MO_SAVE,
                       session=session)
            steps.append("A inserted")
            a_inserted.set()
            if concurrent:
                b_rolled_back.wait()
            session.endSession()
            steps.append("A ended")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
            a_inserted.set()

    def thread_b() -> None:
        try:
            a_inserted.wait()
            session = MotherSession("ThreadB", defer_writes=False)
            ClsStars({"star_name": "B-star"}, MO_SAVE, session=session)
            steps.append("B inserted")
            session.rollback()
            steps.append("B rolled back")
            b_rolled_back.set()
            session.endSession()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
            b_rolled_back.set()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    if concurrent:
        assert steps == ["A inserted", "B inserted", "B rolled back", "A ended"]
    else:
        assert steps == ["A inserted", "A ended", "B inserted", "B rolled back"]
    assert names_stored(database) == {"A-sun"}
    with MotherSession() as session:
        assert session.mr_query("SELECT planet_name FROM planets") == [
            {"planet_name": "A-earth"}]
    assert MotherPoolStatus().in_use == 0
    close_all()


THREADS, SESSIONS = 8, 40


def test_many_threads_random_rollbacks(dsn: str) -> None:
    database = init_mother(dsn=dsn, pool_min=2, pool_max=4, pool_timeout=120, busy_timeout=120)
    tutorial.create(database)
    committed: list[set[str]] = [set() for _ in range(THREADS)]
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        rng = random.Random(number)
        try:
            for i in range(SESSIONS):
                names = {f"t{number}-s{i}-r{k}" for k in range(rng.randint(1, 3))}
                outcome = rng.choice(["commit", "rollback", "error"])
                if outcome == "error":
                    try:
                        with MotherSession(f"W{number}-{i}") as session:
                            for name in names:
                                ClsStars({"star_name": name}, MO_SAVE, session=session)
                            raise LookupError("rolled back by the context manager")
                    except LookupError:
                        pass
                    continue
                session = MotherSession(f"W{number}-{i}")
                for name in sorted(names):
                    session.oc_query(
                        "INSERT INTO stars (star_name) VALUES "
                        f"({database.dialect.placeholder('n')})", {"n": name})
                if outcome == "rollback":
                    session.rollback()
                    session.endSession()
                else:
                    session.endSession()
                    committed[number] |= names
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected = set().union(*committed)
    assert expected  # the seeds give some commits
    assert names_stored(database) == expected
    status = MotherPoolStatus()
    assert status.in_use == 0 and status.waiting == 0
    assert status.size == status.available and status.size <= 4
    close_all()
