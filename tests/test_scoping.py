"""Scopes: object_session, session_scope, and scoped_session per thread, context or process."""

from __future__ import annotations

import asyncio
import threading

import pytest

import mother
from mother import MO_SAVE, object_session, scoped_session, session_scope
from tests.support.classes import ClsStars
from tests.support.databases import count


class Boom(Exception):
    pass


def test_object_session(db: mother.Database) -> None:
    with mother.MotherSession() as s:
        star = ClsStars({"star_name": "Sun"}, MO_SAVE, session=s)
        assert object_session(star) is s
        s.detach(star)
        assert object_session(star) is None
    assert object_session(object()) is None


def test_session_scope_commits_and_ends(db: mother.Database) -> None:
    with session_scope() as s:
        s.persist(ClsStars({"star_name": "Sun"}))
    assert s.closed
    assert count(db, "stars") == 1


def test_session_scope_rolls_back_on_error(db: mother.Database) -> None:
    with pytest.raises(Boom), session_scope("named") as s:
        assert s.name == "named"
        ClsStars({"star_name": "Sun"}, MO_SAVE, session=s)
        s.persist(ClsStars({"star_name": "Vega"}))
        raise Boom
    assert s.closed
    assert count(db, "stars") == 0


def test_scope_must_be_known(db: mother.Database) -> None:
    with pytest.raises(ValueError, match="scope"):
        scoped_session(scope="request")


def _run_threads(target, n: int = 4) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_thread_scope_gives_one_session_per_thread(db: mother.Database) -> None:
    registry = scoped_session()
    seen: dict[int, mother.Session] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        try:
            s = registry()
            assert registry() is s and registry.has()
            seen[i] = s
            barrier.wait()  # all four sessions exist at the same time
            s.persist(ClsStars({"star_name": f"t{i}"}))
            registry.remove()
            assert s.closed and not registry.has()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    _run_threads(work)
    assert not errors
    assert len({id(s) for s in seen.values()}) == 4
    assert count(db, "stars") == 4


def test_application_scope_is_shared_by_threads(db: mother.Database) -> None:
    registry = scoped_session(scope="application")
    seen: list[mother.Session] = []
    _run_threads(lambda i: seen.append(registry()))
    assert len({id(s) for s in seen}) == 1
    seen[0].persist(ClsStars({"star_name": "Sun"}))
    registry.remove()
    assert seen[0].closed and count(db, "stars") == 1


def test_context_scope_gives_one_session_per_task(db: mother.Database) -> None:
    registry = scoped_session(scope="context", autoflush=False)

    async def task(i: int) -> mother.Session:
        s = registry()
        await asyncio.sleep(0)  # other tasks run in between
        assert registry() is s
        s.persist(ClsStars({"star_name": f"task{i}"}))
        await asyncio.sleep(0)
        assert registry() is s and len(s.new) == 1
        registry.remove()
        return s

    async def main() -> list[mother.Session]:
        return list(await asyncio.gather(*(task(i) for i in range(3))))

    sessions = asyncio.run(main())
    assert len({id(s) for s in sessions}) == 3
    assert all(s.closed for s in sessions)
    assert count(db, "stars") == 3


def test_context_scope_works_in_threads_too(db: mother.Database) -> None:
    registry = scoped_session(scope="context")
    seen: dict[int, mother.Session] = {}
    _run_threads(lambda i: seen.__setitem__(i, registry()))
    assert len({id(s) for s in seen.values()}) == 4
    for s in seen.values():
        s.close()


def test_remove_without_commit_rolls_back(db: mother.Database) -> None:
    registry = scoped_session(scope="thread")
    s = registry()
    s.persist(ClsStars({"star_name": "Sun"}))
    registry.remove(commit=False)
    assert s.closed and count(db, "stars") == 0
    assert registry() is not s  # a new session on next use
    registry.remove()
