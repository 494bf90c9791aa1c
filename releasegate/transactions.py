"""Transactions and locks: the one lock order of releasegate, and retries of transient errors.

Every write is a service wrapped in `@service`. A service that locks rows does it through the
functions below, never with a bare `select_for_update`; each takes its lock at a rank, and a
transaction may only go up the ranks, never down, so two transactions can never each hold what the
other waits for (a deadlock needs a cycle; a single order has none). A lock taken out of order
raises `LockOrderViolation` at once, in tests and in production alike.

    rank  what                                   how
    ----  -------------------------------------  --------------------------------------------------
    10    an artifact digest                     pg_advisory_xact_lock (PostgreSQL only): a veto of
                                                 the same artifact in another project is seen
    20    a project row                          FOR NO KEY UPDATE
    30    a release row                          FOR NO KEY UPDATE
    40    rows that belong to one release or     FOR NO KEY UPDATE, several in primary-key order
          project (vetoes, check results,
          waivers, holds, break-glass, ...)
    50    rows of an account (API tokens, ...)   FOR NO KEY UPDATE
    90    the audit chain head                   FOR UPDATE, last: `audit_record` appends after
                                                 every other lock of the act

`FOR NO KEY UPDATE` leaves the row's key alone, so the `FOR KEY SHARE` that PostgreSQL takes for a
foreign-key check (Django's are deferred to COMMIT) never waits on it: inserting a release, an
approval or a check result never queues behind a transaction that holds its project or release.

Ranks are per project: nothing here is global, so writes of different projects never wait on each
other (the audit chain is per project too).

A transient database error (a deadlock or serialization failure that PostgreSQL resolves by
aborting one side, a dropped connection, SQLite's "database is locked") rolls the whole service
back; `@service` then runs it again, a bounded number of times with full jitter, when it is the
outermost transaction. What is still failing after that is `Unavailable`, a 503 with Retry-After,
never a 500, and nothing of it was stored.
"""

import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import IntEnum
from typing import Any, ParamSpec, TypeVar, overload

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Model, QuerySet

from releasegate.errors import Unavailable

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
M = TypeVar("M", bound=Model)

MAX_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 0.01
BACKOFF_CAP_SECONDS = 0.5

# PostgreSQL SQLSTATEs after which the same transaction, run again, may well succeed.
TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
        "57P01",  # admin_shutdown (a failover or restart)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
    }
)


class LockRank(IntEnum):
    ARTIFACT = 10
    PROJECT = 20
    RELEASE = 30
    RELEASE_ROWS = 40
    ACCOUNT = 50
    AUDIT = 90


class LockOrderViolation(RuntimeError):
    """A lock was requested below the rank of one already held in the same transaction."""


# The highest rank held by the service running in this context, or None outside any service.
_held: ContextVar[list[int] | None] = ContextVar("releasegate_locks_held", default=None)


def note_lock(rank: LockRank, what: str) -> None:
    """Record that the current service takes a lock of `rank`; refuse one out of order."""
    held = _held.get()
    if held is None:
        raise LockOrderViolation(f"{what} is locked outside a service (wrap the write in @service)")
    if rank < held[0]:
        raise LockOrderViolation(
            f"{what} (rank {rank.name}) locked after a lock of rank {LockRank(held[0]).name}: "
            "see the lock order in releasegate/transactions.py"
        )
    held[0] = int(rank)


@contextmanager
def _lock_scope() -> Iterator[None]:
    if _held.get() is not None:
        yield  # a service called from a service shares its transaction, and so its locks
        return
    token = _held.set([0])
    try:
        yield
    finally:
        _held.reset(token)


def is_transient(exc: BaseException) -> bool:
    """Whether running the same transaction again may succeed."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in TRANSIENT_SQLSTATES or sqlstate.startswith("08")
    if connection.vendor == "sqlite":
        return "locked" in str(exc)
    # psycopg raises OperationalError without a SQLSTATE when the connection itself broke.
    return connection.vendor == "postgresql"


def database_failed(exc: BaseException) -> bool:
    """Whether an act failed because the database was busy or unreachable, not because of a bug:
    a transient error, or a service that gave up retrying one. Such a failure is a 503 to a caller
    and a prompt retry to a task."""
    return isinstance(exc, Unavailable) or (isinstance(exc, DatabaseError) and is_transient(exc))


def _recover() -> None:
    """After a failed attempt: drop a connection that broke, so the next attempt reconnects."""
    raw = connection.connection
    if raw is not None and (getattr(raw, "closed", False) or getattr(raw, "broken", False)):
        connection.close()


@overload
def service(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def service(*, savepoint: bool) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def service(
    fn: Callable[P, R] | None = None, /, *, savepoint: bool = True
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """A write: one transaction, its locks in the one order, transient errors retried.

    Retries happen only where the service is the outermost transaction: inside a caller's
    transaction the error propagates, so the outermost service retries the whole act.

    Called inside a caller's transaction, a service runs in a savepoint, so a caller may catch
    its error and go on. `@service(savepoint=False)` is for a step that no caller may survive
    (an audit append: an act whose event failed must not commit): it runs in the caller's
    transaction as is, two statements fewer, and its error dooms that whole transaction.
    """
    if fn is None:
        return functools.partial(_service, savepoint=savepoint)
    return _service(fn, savepoint=savepoint)


def _service(fn: Callable[P, R], *, savepoint: bool) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if connection.in_atomic_block:
            with _lock_scope(), transaction.atomic(savepoint=savepoint):
                return fn(*args, **kwargs)
        attempt = 1
        while True:
            try:
                with _lock_scope(), transaction.atomic():
                    return fn(*args, **kwargs)
            except DatabaseError as exc:
                if not is_transient(exc):
                    raise
                _recover()
                if attempt >= MAX_ATTEMPTS:
                    log.warning(
                        "%s gave up after %d attempts: %s", fn.__qualname__, attempt, type(exc)
                    )
                    raise Unavailable() from exc
                cap = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
                delay = random.uniform(0, cap)  # noqa: S311 - jitter, not a secret
                log.info(
                    "%s: transient database error (%s), attempt %d of %d again in %.0f ms",
                    fn.__qualname__,
                    getattr(exc.__cause__, "sqlstate", None) or type(exc).__name__,
                    attempt + 1,
                    MAX_ATTEMPTS,
                    delay * 1000,
                )
                time.sleep(delay)
                attempt += 1

    return wrapper


# Locks, in rank order --------------------------------------------------------------------------


def lock_artifact(digest: str) -> None:
    """Serialize acts on one artifact digest across projects (PostgreSQL; SQLite has one writer)."""
    note_lock(LockRank.ARTIFACT, f"artifact {digest}")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [digest])


def lock_one(queryset: QuerySet[M], rank: LockRank, **lookup: Any) -> M:
    """The one row of `queryset` matching `lookup`, locked FOR NO KEY UPDATE at `rank` (tables
    joined by select_related are read, not locked)."""
    note_lock(rank, queryset.model._meta.label)
    return queryset.select_for_update(no_key=True, of=("self",)).get(**lookup)


def lock_many(queryset: QuerySet[M], rank: LockRank) -> list[M]:
    """Every row of `queryset`, locked FOR NO KEY UPDATE at `rank`, in primary-key order (two
    transactions locking overlapping sets then queue instead of deadlocking)."""
    note_lock(rank, queryset.model._meta.label)
    return list(queryset.select_for_update(no_key=True, of=("self",)).order_by("pk"))


def lock_project(project_id: int) -> None:
    from releasegate.releases.models import Project

    lock_one(Project.objects.only("id"), LockRank.PROJECT, pk=project_id)


def lock_audit_head(queryset: QuerySet[M], **lookup: Any) -> M:
    """The audit chain head, FOR UPDATE, last of all locks."""
    note_lock(LockRank.AUDIT, "the audit chain head")
    return queryset.select_for_update().get(**lookup)
