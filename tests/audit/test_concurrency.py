"""Appending under real concurrency: two PostgreSQL connections (threads) at the same time.

Writers of different projects never wait on each other; writers of one project queue on its
chain head and never share a seq.
"""

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import OperationalError, connection, transaction

from releasegate.accounts.actors import Actor
from releasegate.audit.models import AuditChain, AuditEvent
from releasegate.audit.services import audit_record
from releasegate.audit.verify import verify_trail
from releasegate.releases.models import Project
from tests.conftest import make_personas

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

DEADLINE = 10.0  # seconds; generous for a loaded machine, far below "blocked forever"


def _record(project: Project, action: str) -> AuditEvent:
    return audit_record(action=action, actor=Actor.system_actor(), project_id=project.pk)


class Holder(threading.Thread):
    """Appends one event in an open transaction and keeps it open until told to commit."""

    def __init__(self, project: Project) -> None:
        super().__init__(daemon=True)
        self.project = project
        self.appended = threading.Event()
        self.release = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with transaction.atomic():
                _record(self.project, "held_open")
                self.appended.set()
                assert self.release.wait(DEADLINE * 3)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
            self.appended.set()
        finally:
            connection.close()


@pytest.fixture
def holding() -> Iterator[Callable[[Project], Holder]]:
    started: list[Holder] = []

    def start(project: Project) -> Holder:
        holder = Holder(project)
        holder.start()
        assert holder.appended.wait(DEADLINE)
        assert holder.error is None, holder.error
        started.append(holder)
        return holder

    yield start
    for holder in started:
        holder.release.set()
        holder.join(DEADLINE)


def _in_thread(work: Callable[[], Any]) -> Any:
    """Run `work` on its own connection and return its result (or raise its error)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as exc:
            result["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE)
    assert not thread.is_alive(), "the writer is still waiting"
    if "error" in result:
        raise result["error"]
    return result["value"]


def _append_with_lock_timeout(project: Project, action: str) -> AuditEvent:
    with transaction.atomic():
        with connection.cursor() as cursor:
            # A writer that had to wait for the other transaction fails fast instead.
            cursor.execute("SET LOCAL lock_timeout = '2s'")
        return _record(project, action)


def test_writers_of_two_projects_append_at_once_without_waiting(holding):
    one = make_personas("project-one", prefix="a-").project
    two = make_personas("project-two", prefix="b-").project
    holder = holding(one)
    # While project one's transaction is open with its event appended, project two commits.
    event = _in_thread(lambda: _append_with_lock_timeout(two, "not_waiting"))
    assert (event.chain.name, event.action) == ("project-two", "not_waiting")
    assert AuditEvent.objects.filter(action="not_waiting").exists()
    assert not AuditEvent.objects.filter(action="held_open").exists()
    holder.release.set()
    holder.join(DEADLINE)
    assert holder.error is None, holder.error
    assert AuditEvent.objects.filter(action="held_open", project_id=one.pk).count() == 1
    assert verify_trail().problems == []


def test_a_second_writer_of_the_same_project_waits_for_the_first(holding):
    one = make_personas("project-one").project
    holding(one)
    with pytest.raises(OperationalError, match="lock timeout"):
        _in_thread(lambda: _append_with_lock_timeout(one, "would_wait"))
    assert not AuditEvent.objects.filter(action="would_wait").exists()


def test_concurrent_writers_of_one_project_never_share_a_seq():
    project = make_personas("busy").project
    before = AuditChain.objects.get(project_id=project.pk).size
    writers, each = 6, 15
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            barrier.wait(DEADLINE)
            for _ in range(each):
                with transaction.atomic():
                    _record(project, "busy")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, daemon=True) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE * 3)
    assert errors == []
    seqs = list(
        AuditEvent.objects.filter(chain__project_id=project.pk, action="busy").values_list(
            "seq", flat=True
        )
    )
    assert sorted(seqs) == list(range(before + 1, before + writers * each + 1))
    assert AuditChain.objects.get(project_id=project.pk).size == before + writers * each
    assert verify_trail().problems == []


def test_two_first_writers_of_a_new_chain_make_one_chain():
    # A project whose chain does not exist yet (made without its service, so no event).
    newcomer = Project.objects.create(slug="newcomer", name="Newcomer")
    barrier = threading.Barrier(2)

    def first() -> int:
        barrier.wait(DEADLINE)
        with transaction.atomic():
            return _record(newcomer, "first").seq

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(_run_closing(first))) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert sorted(results) == [1, 2]
    assert AuditChain.objects.filter(project_id=newcomer.pk).count() == 1
    assert AuditChain.objects.get(project_id=newcomer.pk).name == "newcomer"


def _run_closing(work: Callable[[], int]) -> int:
    try:
        return work()
    finally:
        connection.close()
