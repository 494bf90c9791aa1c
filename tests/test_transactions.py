"""The one lock order and the retry of transient database errors (releasegate/transactions.py).

The concurrency tests use real PostgreSQL connections, one per thread.
"""

import re
import threading
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, ProgrammingError, connection, transaction

from releasegate.errors import Unavailable
from releasegate.releases.models import Project, Veto
from releasegate.transactions import (
    MAX_ATTEMPTS,
    LockOrderViolation,
    LockRank,
    is_transient,
    lock_artifact,
    lock_one,
    lock_project,
    service,
)
from tests.builders import submitted_release

ROOT = Path(__file__).resolve().parent.parent / "releasegate"


def test_no_lock_is_taken_outside_the_lock_order_module():
    """Every row lock goes through releasegate/transactions.py, which checks the order."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        if path.name == "transactions.py" or "migrations" in path.parts:
            continue
        text = path.read_text()
        for pattern in (r"select_for_update\(", r"pg_advisory"):
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert offenders == []


@pytest.mark.django_db
def test_a_lock_below_one_already_held_is_refused(personas):
    @service
    def out_of_order() -> None:
        lock_project(personas.project.pk)
        lock_artifact("sha256:" + "0" * 64)

    with pytest.raises(LockOrderViolation, match="ARTIFACT.*after a lock of rank PROJECT"):
        out_of_order()


@pytest.mark.django_db
def test_locks_in_order_and_a_nested_service_shares_the_order(personas):
    release = submitted_release(personas.project, personas.requester)

    @service
    def inner() -> None:
        lock_one(Project.objects.all(), LockRank.PROJECT, pk=personas.project.pk)

    @service
    def outer() -> None:
        lock_artifact(release.artifact_digest)
        lock_project(personas.project.pk)
        inner()  # the same rank again is fine
        lock_one(type(release).objects.all(), LockRank.RELEASE, pk=release.pk)

    outer()

    @service
    def nested_goes_down() -> None:
        lock_one(type(release).objects.all(), LockRank.RELEASE, pk=release.pk)
        inner()

    with pytest.raises(LockOrderViolation):
        nested_goes_down()


@pytest.mark.django_db
def test_a_lock_outside_any_service_is_refused(personas):
    with transaction.atomic(), pytest.raises(LockOrderViolation, match="outside a service"):
        lock_project(personas.project.pk)


def _run_threads(*targets: Any) -> list[BaseException]:
    failures: list[BaseException] = []

    def wrap(target: Any) -> None:
        try:
            target()
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrap, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return failures


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_deadlock_is_retried_and_both_acts_complete(personas):
    """Two services that lock two rows in opposite orders (raw SQL, around the lock helpers, to
    make the cycle the helpers forbid): PostgreSQL aborts one side, which runs again and commits."""
    a = personas.project.pk
    b = Project.objects.create(slug="second", name="Second").pk
    both_hold_one = threading.Barrier(2)
    attempts = {"first": 0, "second": 0}

    def cross(name: str, mine: int, theirs: int) -> Any:
        @service
        def act() -> None:
            attempts[name] += 1
            with connection.cursor() as cursor:
                cursor.execute("SELECT id FROM releases_project WHERE id = %s FOR UPDATE", [mine])
                if attempts[name] == 1:
                    both_hold_one.wait(timeout=10)
                cursor.execute("SELECT id FROM releases_project WHERE id = %s FOR UPDATE", [theirs])
                cursor.execute(
                    "UPDATE releases_project SET name = name || %s WHERE id = %s", [name[0], mine]
                )

        return act

    failures = _run_threads(cross("first", a, b), cross("second", b, a))

    assert not failures, failures
    assert sorted(attempts.values()) == [1, 2]  # one side deadlocked once, then went through
    names = dict(Project.objects.filter(pk__in=[a, b]).values_list("pk", "name"))
    assert names[a].endswith("f") and names[b].endswith("s")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_write_that_stays_blocked_is_a_503_and_stores_nothing(personas, client):
    """Another connection holds the release's row; the veto's every attempt runs out of its lock
    timeout: the caller gets 503 with Retry-After, and no veto was stored."""
    release = submitted_release(personas.project, personas.requester)
    client.force_login(personas.security)
    holding = threading.Event()
    done = threading.Event()

    def hold() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT id FROM releases_release WHERE id = %s FOR UPDATE", [release.pk])
            holding.set()
            done.wait(timeout=30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(timeout=10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '50ms'")
        response = client.post(
            f"/api/v1/releases/{release.pk}/signoffs",
            {"role": "security", "decision": "veto", "reason": "leaks PII"},
            content_type="application/json",
        )
    finally:
        done.set()
        holder.join(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == str(Unavailable.RETRY_AFTER_SECONDS)
    assert response.json()["code"] == "unavailable"
    assert not Veto.objects.filter(release=release).exists()


def _always_locked(calls: list[int]) -> Any:
    @service
    def flaky() -> None:
        calls.append(1)
        raise OperationalError("database is locked")

    return flaky


@pytest.mark.django_db
def test_a_service_inside_a_callers_transaction_leaves_the_retry_to_the_outermost():
    calls: list[int] = []
    with transaction.atomic(), pytest.raises(OperationalError) as raised:
        _always_locked(calls)()
    assert calls == [1]
    assert is_transient(raised.value)


@pytest.mark.django_db(transaction=True)
def test_a_transient_error_is_retried_a_bounded_number_of_times_then_unavailable():
    calls: list[int] = []
    with pytest.raises(Unavailable):
        _always_locked(calls)()
    assert len(calls) == MAX_ATTEMPTS


@pytest.mark.django_db(transaction=True)
def test_a_programming_error_is_not_retried():
    calls: list[int] = []

    @service
    def broken() -> None:
        calls.append(1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM releases_project")

    with pytest.raises(ProgrammingError):
        broken()
    assert calls == [1]


def _terminate_this_connection() -> None:
    """Kill the server side of the kept connection from another one, as a failover or an idle
    timeout in the network would: the client finds out only at its next query."""
    import psycopg
    from django.conf import settings

    pid = connection.connection.info.backend_pid
    db = settings.DATABASES["default"]
    with psycopg.connect(
        host=db["HOST"],
        port=db["PORT"] or 5432,
        user=db["USER"],
        dbname=db["NAME"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_read_on_a_kept_connection_that_died_is_answered_not_a_5xx(personas, client, settings):
    """No health-check round trip before each request: a dead kept connection is found by the
    request's first query, and the read runs again on a new connection."""
    from tests.api.conftest import service_token

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    release = submitted_release(personas.project, personas.requester)
    _, raw = service_token(personas, "gate:read")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    url = f"/api/v1/releases/{release.pk}/gate"
    assert client.get(url, **headers).status_code == 200
    connection.ensure_connection()
    _terminate_this_connection()
    response = client.get(url, **headers)
    assert response.status_code == 200, response.content
    assert response.json()["release"]["id"] == release.pk
    client.force_login(personas.security)
    connection.ensure_connection()
    _terminate_this_connection()
    page = client.get(f"/releases/{release.pk}/")
    assert page.status_code == 200
