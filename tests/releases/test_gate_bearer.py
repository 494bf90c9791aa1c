"""The gate's one-statement bearer path answers as the two-step reference (verify the token, then
read the facts of the projects it may see) for every kind of token, valid or refused."""

import json
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.accounts.models import ApiToken
from releasegate.accounts.tokens import (
    TokenRejected,
    token_create,
    token_parts,
    token_revoke,
    token_verify,
)
from releasegate.releases.gate_statement import read_visible
from releasegate.releases.questions import GateQuestion
from releasegate.releases.selectors import (
    load_bearer_gate_facts,
    visible_project_ids,
)
from releasegate.releases.services import role_grant, veto_cast
from tests.builders import digest_of
from tests.conftest import make_personas
from tests.releases.gatehelpers import cleared_release, person_with

pytestmark = pytest.mark.postgres


def _reference(raw: str, **query: Any) -> tuple[Any, ...]:
    try:
        token = token_verify(raw)
    except TokenRejected as rejected:
        return ("refused", rejected.code)
    project_ids = visible_project_ids(Actor.for_token(token))
    return ("read", token.pk, read_visible(project_ids, GateQuestion(**query)))


def _fused(raw: str, **query: Any) -> tuple[Any, ...]:
    try:
        prefix, key_id, secret = token_parts(raw)
        token, facts = load_bearer_gate_facts(prefix, key_id, secret, GateQuestion(**query))
    except TokenRejected as rejected:
        return ("refused", rejected.code)
    return ("read", token.pk, facts)


def _service(project: Any, *scopes: str) -> tuple[ApiToken, str]:
    return token_create(
        actor=Actor.system_actor(),
        kind="service",
        name="ci",
        project=project,
        scopes=list(scopes or ["gate:read"]),
    )


def _personal(user: Any) -> tuple[ApiToken, str]:
    return token_create(actor=Actor.for_user(user), kind="personal", name="t", user=user)


@pytest.fixture
def world(personas: Any) -> dict[str, Any]:
    p = personas
    other = make_personas("other-project", prefix="o-")
    release = cleared_release(p)
    staging = cleared_release(p, version="1.0.1", environment="staging")
    theirs = cleared_release(other, version="2.0.0")
    both = person_with(p, "both", "sme")
    role_grant(project=other.project, user=both, role="auditor", actor=Actor.system_actor())
    return {
        "p": p,
        "other": other,
        "release": release,
        "staging": staging,
        "theirs": theirs,
        "both": both,
    }


def _expired(w: dict[str, Any]) -> str:
    token, raw = _service(w["p"].project)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    return raw


def _revoked(w: dict[str, Any]) -> str:
    token, raw = _service(w["p"].project)
    token_revoke(token=token, actor=Actor.system_actor())
    return raw


def _inactive(w: dict[str, Any]) -> str:
    _, raw = _personal(w["p"].sme)
    type(w["p"].sme).objects.filter(pk=w["p"].sme.pk).update(is_active=False)
    return raw


CASES: dict[str, tuple[Any, Any, tuple[Any, ...]]] = {
    # name: (the token, the query, what the caller gets: refused with a code, no release, or one)
    "service": (
        lambda w: _service(w["p"].project)[1],
        lambda w: {"release_id": w["release"].pk},
        ("read", "release"),
    ),
    "service by digest for staging": (
        lambda w: _service(w["p"].project)[1],
        lambda w: {"artifact_digest": w["staging"].artifact_digest, "environment": "staging"},
        ("read", "staging"),
    ),
    "service by version for another environment": (
        lambda w: _service(w["p"].project)[1],
        lambda w: {
            "project_slug": w["p"].project.slug,
            "version": "1.0.0",
            "environment": "staging",
        },
        ("read", "release"),
    ),
    "personal, roles on no project": (
        lambda w: _personal(w["p"].outsider)[1],
        lambda w: {"release_id": w["release"].pk},
        ("read", None),
    ),
    "personal, a role on one project": (
        lambda w: _personal(w["p"].security)[1],
        lambda w: {"release_id": w["release"].pk},
        ("read", "release"),
    ),
    "personal, a role on one project, asking of another": (
        lambda w: _personal(w["p"].security)[1],
        lambda w: {"release_id": w["theirs"].pk},
        ("read", None),
    ),
    "personal, roles on two projects, this one": (
        lambda w: _personal(w["both"])[1],
        lambda w: {"release_id": w["release"].pk},
        ("read", "release"),
    ),
    "personal, roles on two projects, the other": (
        lambda w: _personal(w["both"])[1],
        lambda w: {"release_id": w["theirs"].pk},
        ("read", "theirs"),
    ),
    "expired": (_expired, lambda w: {"release_id": w["release"].pk}, ("refused", "token_expired")),
    "revoked": (_revoked, lambda w: {"release_id": w["release"].pk}, ("refused", "token_revoked")),
    "forged secret": (
        lambda w: _service(w["p"].project)[1][:-8] + "forgedXX",
        lambda w: {"release_id": w["release"].pk},
        ("refused", "token_invalid"),
    ),
    "wrong prefix": (
        lambda w: "rgp_" + _service(w["p"].project)[1][4:],
        lambda w: {"release_id": w["release"].pk},
        ("refused", "token_invalid"),
    ),
    "unknown key id": (
        lambda w: "rgs_" + "0" * 12 + "_" + _service(w["p"].project)[1][17:],
        lambda w: {"release_id": w["release"].pk},
        ("refused", "token_invalid"),
    ),
    "inactive user": (
        _inactive,
        lambda w: {"release_id": w["release"].pk},
        ("refused", "token_user_inactive"),
    ),
    "narrow scope": (
        lambda w: _service(w["p"].project, "alerts:write")[1],
        lambda w: {"release_id": w["release"].pk},
        ("read", None),
    ),
    "another project's token": (
        lambda w: _service(w["other"].project)[1],
        lambda w: {"release_id": w["release"].pk},
        ("read", None),
    ),
    "unknown release": (
        lambda w: _service(w["p"].project)[1],
        lambda w: {"release_id": 10**9},
        ("read", None),
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_one_statement_path_answers_as_the_two_step_reference(world, case):
    make_token, make_query, (outcome, expected) = CASES[case]
    raw, query = make_token(world), make_query(world)
    fused = _fused(raw, **query)
    assert fused == _reference(raw, **query)
    assert fused[0] == outcome
    if outcome == "refused":
        assert fused[1] == expected
    elif expected is None:
        assert fused[2] is None
    else:
        assert fused[2] is not None and fused[2].release.id == world[expected].pk


def test_a_refused_token_is_answered_401_with_its_code_by_both_gate_endpoints(world, client):
    raw = _revoked(world)
    release = world["release"]
    for path in (
        f"/api/v1/releases/{release.pk}/gate",
        f"/api/v1/gate?project={release.project.slug}&version={release.version}",
        "/api/v1/releases/999999999/gate",
        "/api/v1/gate?project=NOT%20A%20SLUG",
        f"/api/v1/releases/{release.pk}/gate?environment=%00",
    ):
        response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert response.status_code == 401
        assert response.json()["code"] == "token_revoked"
        assert response["WWW-Authenticate"] == 'Bearer realm="releasegate"'


def test_a_narrow_token_is_answered_404_as_for_a_release_that_does_not_exist(world, client):
    _, raw = _service(world["p"].project, "alerts:write")
    seen = client.get(
        f"/api/v1/releases/{world['release'].pk}/gate", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    missing = client.get("/api/v1/releases/999999999/gate", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert seen.status_code == missing.status_code == 404
    assert seen.json() == missing.json()


def test_a_valid_token_is_recorded_as_used_by_the_gate(world, client):
    token, raw = _service(world["p"].project)
    response = client.get(
        f"/api/v1/releases/{world['release'].pk}/gate", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert response.status_code == 200 and response.json()["cleared"] is True
    token.refresh_from_db()
    assert token.last_used_at is not None


def _hammer(url: str, raw: str, stop: threading.Event, answers: list[tuple[float, bool]]) -> None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {raw}"})
    while not stop.is_set():
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            answers.append((started, json.loads(response.read())["cleared"]))


@pytest.mark.django_db(transaction=True)
def test_every_gate_answer_that_starts_after_a_veto_commits_is_blocked(live_server):
    p = make_personas()
    release = cleared_release(p)
    _, raw = _service(p.project)
    url = f"{live_server.url}/api/v1/releases/{release.pk}/gate"
    stop = threading.Event()
    answers: list[list[tuple[float, bool]]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=_hammer, args=(url, raw, stop, found)) for found in answers]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        veto_cast(release=release, actor=p.actor("sme"), role="sme", reason="stop", scope="release")
        committed = time.monotonic()  # veto_cast has returned: its transaction has committed
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    every = [answer for found in answers for answer in found]
    after = [cleared for started, cleared in every if started > committed]
    before = [cleared for started, cleared in every if started <= committed]
    assert before and any(before), "the gate was hammered while the release was cleared"
    assert after, "the gate was hammered after the veto"
    assert not any(after)
    connection.close()


def test_an_artifact_digest_nobody_released_is_404_for_a_valid_token(world, client):
    _, raw = _service(world["p"].project)
    response = client.get(
        f"/api/v1/gate?digest={digest_of('never released')}", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert response.status_code == 404


@pytest.mark.parametrize("kind", ["service", "personal"])
def test_the_token_read_back_by_name_is_the_orms_field_for_field(world, kind):
    p = world["p"]
    token, raw = _service(p.project) if kind == "service" else _personal(p.security)
    # Used a moment ago, so neither path records its use.
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    fused, _ = load_bearer_gate_facts(
        *token_parts(raw), GateQuestion(release_id=world["release"].pk)
    )
    orm = ApiToken.objects.select_related("user").get(pk=token.pk)
    for field in ApiToken._meta.concrete_fields:
        assert getattr(fused, field.attname) == getattr(orm, field.attname), field.name
    if kind == "personal":
        for field in type(orm.user)._meta.concrete_fields:
            assert getattr(fused.user, field.attname) == getattr(orm.user, field.attname)
    else:
        assert fused.user is None
