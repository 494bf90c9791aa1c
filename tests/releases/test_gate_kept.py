"""The gate statement's kept document (`gate_statement._answer`): a process keeps the last document
of each question with the snapshot it was read under, and the database sends it again only when
the snapshot changed. These tests commit for real (transactional), from several connections."""

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections, transaction
from django.test import Client
from django.utils import timezone

from releasegate.accounts.models import ApiToken
from releasegate.releases import gate_statement
from releasegate.releases.gate_statement import Statement, read_visible
from releasegate.releases.models import Veto
from releasegate.releases.questions import GateQuestion
from releasegate.releases.services import veto_cast
from tests.api.conftest import service_token
from tests.api.test_lean_gate import lean_answered
from tests.conftest import make_personas
from tests.releases.gatehelpers import cleared_release

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _in_another_connection(read: Callable[[], Any]) -> Any:
    """What `read` answers on a connection of its own (another thread), in autocommit."""
    found: list[Any] = []

    def run() -> None:
        try:
            found.append(read())
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return found[0]


def _statement(release_id: int) -> tuple[Statement, dict[str, Any]]:
    statement = gate_statement._visible_statement(frozenset({"release_id"}))
    values = {
        **gate_statement._constants(),
        "release_id": release_id,
        "project_ids": [],
        "environment": None,
    }
    return statement, values


def _sent(statement: Statement, values: dict[str, Any], known: str | None) -> tuple[Any, ...]:
    """The function's answer to a caller that knows the snapshot `known`."""
    return gate_statement._call(connection, statement, known, statement.params(values), values)


def test_the_document_is_sent_again_only_after_a_commit():
    p = make_personas()
    release = cleared_release(p)
    statement, values = _statement(release.pk)
    values["project_ids"] = [p.project.pk]

    snapshot, changed, document = _sent(statement, values, None)
    assert changed and document is not None and snapshot
    # Nothing committed since: the same snapshot, and no document sent.
    assert _sent(statement, values, snapshot) == (snapshot, False, None)
    veto_cast(release=release, actor=p.actor("sme"), role="sme", reason="stop")
    again, changed, document = _sent(statement, values, snapshot)
    assert again != snapshot and changed and '"reason" : "stop"' in document


def test_a_veto_still_being_written_is_not_shown_to_another_request_and_is_once_committed():
    p = make_personas()
    release = cleared_release(p)
    _, raw = service_token(p, "gate:read")
    path = f"/api/v1/releases/{release.pk}/gate"

    def ask() -> Any:
        response = Client().get(path, HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert lean_answered(response)
        return response.json()

    assert ask()["cleared"] is True  # kept by this process, under the snapshot before the veto
    with transaction.atomic():
        veto_cast(release=release, actor=p.actor("sme"), role="sme", reason="stop")
        # The writer sees its own veto, though no snapshot has changed.
        assert [b["code"] for b in ask()["blockers"]] == ["veto"]
        # Another request, while the veto is not committed: not blocked by it, twice (the
        # second from what is kept, if anything is).
        for _ in range(2):
            assert _in_another_connection(ask)["cleared"] is True
    assert [b["code"] for b in _in_another_connection(ask)["blockers"]] == ["veto"]
    assert [b["code"] for b in ask()["blockers"]] == ["veto"]


def test_what_depends_on_the_time_is_decided_on_every_request_even_when_nothing_changed():
    p = make_personas()
    release = cleared_release(p)
    token, raw = service_token(p, "gate:read")
    ApiToken.objects.filter(pk=token.pk).update(
        expires_at=timezone.now() + timedelta(seconds=1.5), last_used_at=timezone.now()
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    path = f"/api/v1/releases/{release.pk}/gate"
    assert client.get(path).status_code == 200
    assert client.get(path).status_code == 200
    time.sleep(1.6)
    expired = client.get(path)
    assert expired.status_code == 401 and expired.json()["code"] == "token_expired"


def test_a_database_without_this_versions_function_gets_it_on_first_use():
    p = make_personas()
    release = cleared_release(p)
    veto_cast(
        release=release, actor=p.actor("sme"), role="sme", reason="stop", scope=Veto.Scope.RELEASE
    )
    statement, _ = _statement(release.pk)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP FUNCTION {statement.function}")
    facts = read_visible([p.project.pk], GateQuestion(release_id=release.pk))
    assert facts is not None and [v.reason for v in facts.vetoes] == ["stop"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_proc WHERE proname = %s", [statement.function])
        assert cursor.fetchone() == (1,)


def test_connections_that_find_the_function_missing_at_once_all_answer():
    """A rolling deploy: every worker of the new version asks before `migrate` has run."""
    p = make_personas()
    release = cleared_release(p)
    statement, _ = _statement(release.pk)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP FUNCTION {statement.function}")
    start = threading.Barrier(8)
    answers: list[Any] = []

    def ask() -> None:
        try:
            start.wait()
            facts = read_visible([p.project.pk], GateQuestion(release_id=release.pk))
            answers.append(None if facts is None else facts.release.id)
        except Exception as error:  # noqa: BLE001 - the assertion below names it
            answers.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [release.pk] * 8


def test_a_statement_that_reads_the_clock_is_refused():
    for clock in ("now()", "CURRENT_TIMESTAMP", "clock_timestamp()", "localtimestamp"):
        with pytest.raises(ImproperlyConfigured, match="not the clock"):
            Statement.of(f"SELECT {clock} AS document")


@pytest.mark.parametrize(("threshold", "prepared"), [(0, 1), (None, 0)])
def test_the_read_is_prepared_unless_prepared_statements_are_off(threshold, prepared):
    """DATABASE_PREPARED_STATEMENTS=false (a pooler in transaction mode) sets the connection's
    prepare_threshold to None: then nothing is prepared, and the read answers all the same."""
    p = make_personas()
    release = cleared_release(p)
    connection.ensure_connection()
    connection.connection.prepare_threshold = threshold
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    facts = read_visible([p.project.pk], GateQuestion(release_id=release.pk))
    assert facts is not None and facts.release.id == release.pk
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone() == (prepared,)
    connection.close()
