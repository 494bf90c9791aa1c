"""Lifting a veto through a release: a veto from a project the caller cannot see stays unknown."""

import json

import pytest
from django.test import Client

from releasegate.accounts.actors import Actor
from releasegate.releases.models import Veto
from releasegate.releases.services import role_grant, veto_cast
from tests.builders import submitted_release
from tests.conftest import make_personas

pytestmark = pytest.mark.django_db


def _lift(user, release_id: int, veto_id: int):
    client = Client()
    client.force_login(user)
    return client.post(
        f"/api/v1/releases/{release_id}/vetoes/{veto_id}/lift",
        data=json.dumps({"reason": "looks fine to me"}),
        content_type="application/json",
    )


def test_lifting_a_veto_of_an_invisible_project_is_a_404_like_an_unknown_id(personas):
    mine = submitted_release(personas.project, personas.requester)
    other = make_personas("other-project", prefix="o-")
    theirs = submitted_release(other.project, other.requester, artifact=mine.artifact_digest)
    veto = veto_cast(
        release=theirs, actor=other.actor("security"), role="security", reason="leaks PII"
    )

    answer = _lift(personas.security, mine.pk, veto.pk)
    unknown = _lift(personas.security, mine.pk, veto.pk + 1000)

    assert answer.status_code == 404
    assert answer.json() == unknown.json()
    assert Veto.objects.get(pk=veto.pk).lifted_at is None


def test_a_holder_in_both_projects_may_lift_the_artifact_veto_through_either_release(personas):
    mine = submitted_release(personas.project, personas.requester)
    other = make_personas("other-project", prefix="o-")
    theirs = submitted_release(other.project, other.requester, artifact=mine.artifact_digest)
    veto = veto_cast(
        release=theirs, actor=other.actor("security"), role="security", reason="leaks PII"
    )
    role_grant(
        project=other.project, user=personas.security, role="security", actor=Actor.system_actor()
    )

    answer = _lift(personas.security, mine.pk, veto.pk)

    assert answer.status_code == 200
    assert Veto.objects.get(pk=veto.pk).lifted_at is not None
