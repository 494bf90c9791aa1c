"""No gate answer is ever stale: every write that changes the answer is visible to the very next
request, in sequence and while other connections hammer the gate (through the lean path, as CI and
a cluster ask it). The writes commit for real, so the requests between them are answered from the
document the process keeps while the database does not change (`gate_statement._answer`)."""

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from releasegate.accounts.actors import Actor
from releasegate.accounts.tokens import token_revoke
from releasegate.checks.services import check_result_record
from releasegate.releases.models import Veto
from releasegate.releases.services import (
    approval_give,
    evidence_attach,
    policy_change,
    veto_cast,
    veto_lift,
)
from tests.api.conftest import service_token
from tests.api.test_lean_gate import lean_answered
from tests.attestations.conftest import admission_review, image, pod_spec, promoted, workload
from tests.builders import confirmed, document, pass_checks
from tests.conftest import make_personas
from tests.releases.gatehelpers import cleared_release

pytestmark = pytest.mark.postgres


def _codes(answer: Any) -> list[str]:
    return [b["code"] for b in answer["blockers"]]


@pytest.mark.django_db(transaction=True)
def test_every_write_is_visible_to_the_very_next_gate_request():
    p = make_personas()
    release = cleared_release(p)
    token, raw = service_token(p, "gate:read")
    path = f"/api/v1/gate?project={p.project.slug}&version={release.version}"

    def ask() -> Any:
        response = Client().get(path, HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert lean_answered(response)
        # Asked again with nothing written between: the same answer.
        again = Client().get(path, HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert {**again.json(), "evaluated_at": None} == {**response.json(), "evaluated_at": None}
        return response

    assert ask().json()["cleared"] is True
    veto = veto_cast(release=release, actor=p.actor("sme"), role="sme", reason="stop")
    assert _codes(ask().json()) == ["veto"]
    veto_lift(veto=veto, actor=p.actor("sme"), reason="fixed")
    assert ask().json()["cleared"] is True

    # New evidence: the checks and approvals of the old manifest no longer count.
    review = document("pipeline_review") | {"reviewer": "someone else"}
    evidence_attach(
        release=release, actor=p.actor("requester"), kind="pipeline_review", document=review
    )
    assert {"check_pending", "approval_stale"} <= set(_codes(ask().json()))
    pass_checks(release)
    assert "check_pending" not in _codes(ask().json())
    approval_give(release=release, actor=p.actor("security"), role="security")
    approval_give(release=release, actor=p.actor("sme"), role="sme")
    assert ask().json()["cleared"] is True

    # A check result that fails, then a policy that asks for more.
    release.refresh_from_db()
    check_result_record(
        release=release, actor=Actor.system_actor(), check="licenses", status="failed"
    )
    assert _codes(ask().json()) == ["check_failed"]
    pass_checks(release, checks=("licenses",))
    assert ask().json()["cleared"] is True
    confirmed(
        policy_change(
            project=p.project,
            actor=p.actor("admin"),
            changes={"required_approvals": {"security": 2, "sme": 1}},
            note="two security sign-offs",
        ),
        p.security,
    )
    assert _codes(ask().json()) == ["approval_missing"]

    token_revoke(token=token, actor=p.actor("admin"))
    refused = ask()
    assert refused.status_code == 401 and refused.json()["code"] == "token_revoked"


def _hammer(
    request: Callable[[], urllib.request.Request],
    outcome: Callable[[int, Any], Any],
    stop: threading.Event,
    answers: list[tuple[float, Any]],
) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request(), timeout=10) as response:  # noqa: S310
                answers.append((started, outcome(response.status, json.loads(response.read()))))
        except urllib.error.HTTPError as error:
            answers.append((started, outcome(error.code, json.loads(error.read()))))


def _around(
    act: Callable[[], Any],
    request: Callable[[], urllib.request.Request],
    outcome: Callable[[int, Any], Any],
) -> tuple[list[Any], list[Any]]:
    """What four connections hammering `request` got before `act` committed, and after."""
    stop = threading.Event()
    answers: list[list[tuple[float, Any]]] = [[] for _ in range(4)]
    threads = [
        threading.Thread(target=_hammer, args=(request, outcome, stop, found)) for found in answers
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        act()
        committed = time.monotonic()  # the service has returned: its transaction committed
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    every = [answer for found in answers for answer in found]
    before = [what for started, what in every if started <= committed]
    after = [what for started, what in every if started > committed]
    assert before and after, "the gate was hammered on both sides of the act"
    return before, after


@pytest.mark.django_db(transaction=True)
def test_every_gate_answer_that_starts_after_a_token_is_revoked_is_refused(live_server):
    p = make_personas()
    release = cleared_release(p)
    token, raw = service_token(p, "gate:read")
    url = f"{live_server.url}/api/v1/releases/{release.pk}/gate"
    before, after = _around(
        lambda: token_revoke(token=token, actor=p.actor("admin")),
        lambda: urllib.request.Request(url, headers={"Authorization": f"Bearer {raw}"}),
        lambda status, body: (status, body.get("code")),
    )
    assert (200, None) in before
    assert set(after) == {(401, "token_revoked")}
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_every_admission_review_that_starts_after_a_veto_commits_is_denied(live_server):
    p = make_personas()
    app = promoted(p)
    _, raw = service_token(p, "admission:review")
    body = json.dumps(admission_review(workload("Pod", pod_spec(image(app))))).encode()
    url = f"{live_server.url}/api/v1/admission/production"
    before, after = _around(
        lambda: veto_cast(
            release=app, actor=p.actor("sme"), role="sme", reason="stop", scope=Veto.Scope.RELEASE
        ),
        lambda: urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {raw}", "Content-Type": "application/json"},
        ),
        lambda status, answer: (status, answer["response"]["allowed"]),
    )
    assert (200, True) in before
    assert set(after) == {(200, False)}
    connection.close()
