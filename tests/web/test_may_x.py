"""What the release page offers is exactly what the services accept: every persona, every act on
a release, every state a release can be in (`releases.permissions` decides once for both)."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.urls import reverse

from releasegate.accounts.actors import Actor
from releasegate.errors import ReleasegateError
from releasegate.releases.models import Approval, Release, Veto
from releasegate.releases.services import (
    approval_give,
    evidence_attach,
    release_promote,
    release_submit,
    release_withdraw,
    role_grant,
    veto_cast,
    veto_lift,
)
from tests.builders import attach_all, document, make_release, pass_checks, submitted_release
from tests.conftest import Personas, make_personas
from tests.web.helpers import signed_in, text

pytestmark = pytest.mark.django_db

ACTS = ("approve", "veto", "lift", "promote", "edit evidence", "submit", "withdraw")


class _Undo(Exception):
    """Raised to roll an accepted act back, so the next persona meets the same release."""


def _cleared(p: Personas, release: Release) -> None:
    pass_checks(release)
    approval_give(release=release, actor=p.actor("security"), role="security")
    approval_give(release=release, actor=p.actor("sme"), role="sme")
    release.refresh_from_db()


def _release_in(state: str, p: Personas) -> Release:
    if state == "draft":
        release = make_release(p.project, p.requester)
        attach_all(release, p.requester)
        return release
    release = submitted_release(p.project, p.requester)
    if state == "cleared":
        _cleared(p, release)
    elif state == "promoted":
        _cleared(p, release)
        release_promote(release=release, actor=p.actor("requester"))
    elif state == "withdrawn":
        release_withdraw(release=release, actor=p.actor("requester"), reason="Superseded.")
    elif state == "vetoed":
        veto_cast(release=release, actor=p.actor("security"), role="security", reason="Leaks PII.")
    release.refresh_from_db()
    return release


def _attempts(release: Release, actor: Actor) -> dict[str, Callable[[], Any]]:
    veto = Veto.objects.filter(release=release, lifted_at__isnull=True).first()

    def approve() -> None:
        accepted = []
        for role in ("security", "sme"):
            if _accepts(lambda r=role: approval_give(release=release, actor=actor, role=r)):
                accepted.append(role)
        if not accepted:
            raise _Refused

    def cast() -> None:
        if not any(
            _accepts(lambda r=role: veto_cast(release=release, actor=actor, role=r, reason="No."))
            for role in ("security", "sme")
        ):
            raise _Refused

    def lift() -> None:
        if veto is None:
            raise _Refused
        veto_lift(veto=veto, actor=actor, reason="Fixed.")

    return {
        "approve": approve,
        "veto": cast,
        "lift": lift,
        "promote": lambda: release_promote(release=release, actor=actor),
        "edit evidence": lambda: evidence_attach(
            release=release, actor=actor, kind="sbom", document=document("sbom")
        ),
        "submit": lambda: release_submit(release=release, actor=actor),
        "withdraw": lambda: release_withdraw(release=release, actor=actor, reason="Not needed."),
    }


class _Refused(Exception):
    pass


def _accepts(act: Callable[[], Any]) -> bool:
    """Whether the service does the act; whatever it did is rolled back."""
    try:
        with transaction.atomic():
            act()
            raise _Undo
    except _Undo:
        return True
    except (ReleasegateError, _Refused):
        return False


def _offered(client: Client, release: Release) -> set[str]:
    body = text(client.get(f"/releases/{release.pk}/"))
    veto = Veto.objects.filter(release=release, lifted_at__isnull=True).first()
    markers = {
        "approve": f'action="{reverse("web:approve", args=[release.pk])}"',
        "veto": f'action="{reverse("web:veto", args=[release.pk])}"',
        "lift": f'action="{reverse("web:lift", args=[release.pk, veto.pk])}"' if veto else None,
        "promote": f'href="{reverse("web:promote", args=[release.pk])}"',
        "edit evidence": f'href="{reverse("web:evidence", args=[release.pk, "sbom"])}"',
        "submit": f'action="{reverse("web:submit", args=[release.pk])}"',
        "withdraw": f'action="{reverse("web:withdraw", args=[release.pk])}"',
    }
    return {act for act, marker in markers.items() if marker is not None and marker in body}


@pytest.mark.parametrize(
    "state", ["draft", "in_review", "cleared", "promoted", "withdrawn", "vetoed"]
)
def test_the_release_page_offers_exactly_what_the_services_accept(client, personas, state):
    release = _release_in(state, personas)
    offered_by: dict[str, set[str]] = {}
    accepted_by: dict[str, set[str]] = {}
    for name, user in personas.all.items():
        offered_by[name] = _offered(signed_in(client, user), release)
        client.logout()
        attempts = _attempts(release, Actor.for_user(user))
        accepted_by[name] = {act for act in ACTS if _accepts(attempts[act])}
    assert offered_by == accepted_by
    # The walk means something: nobody may do everything, and a withdrawn release is done with.
    everyone = set().union(*accepted_by.values())
    assert everyone != set(ACTS)
    assert bool(everyone) == (state != "withdrawn")
    assert accepted_by["outsider"] == set() and accepted_by["auditor"] == set()


def test_an_expired_approval_can_be_renewed_from_the_page_and_waits_on_the_reviewer(
    client, personas
):
    p = personas
    release = submitted_release(p.project, p.requester)
    approval = approval_give(release=release, actor=p.actor("sme"), role="sme")
    policy = p.project.current_policy
    Approval.objects.filter(pk=approval.pk).update(
        created_at=approval.created_at - timedelta(days=policy.max_approval_age_days + 1)
    )
    signed_in(client, p.sme)
    page = text(client.get(f"/releases/{release.pk}/"))
    assert 'class="blocker-approval_expired"' in page
    assert f'action="{reverse("web:approve", args=[release.pk])}"' in page
    home = text(client.get("/"))
    assert f'href="/releases/{release.pk}/"' in home
    assert "Nothing waits on your review." not in home
    response = client.post(f"/releases/{release.pk}/approve/", {"role": "sme", "comment": ""})
    assert response.status_code == 302
    assert Approval.objects.filter(release=release, user=p.sme).count() == 2
    page = text(client.get(f"/releases/{release.pk}/"))
    assert f'action="{reverse("web:approve", args=[release.pk])}"' not in page


def test_a_veto_carried_forward_to_a_later_release_is_lifted_through_that_release(client, personas):
    p = personas
    vetoed = submitted_release(p.project, p.requester, version="1.0.0")
    veto = veto_cast(
        release=vetoed, actor=p.actor("security"), role="security", reason="Leaks PII."
    )
    # Requested by another requester: who asked for a release a veto blocks may not lift it.
    colleague = get_user_model().objects.create_user("colleague")
    role_grant(project=p.project, user=colleague, role="requester", actor=Actor.system_actor())
    later = submitted_release(p.project, colleague, version="1.1.0")
    signed_in(client, p.security)
    page = text(client.get(f"/releases/{later.pk}/"))
    lift_url = reverse("web:lift", args=[later.pk, veto.pk])
    assert "carried forward from" in page
    assert f'action="{lift_url}"' in page
    assert client.post(lift_url, {"reason": "Redaction shipped in 1.1.0."}).status_code == 302
    veto.refresh_from_db()
    assert veto.lifted_by == p.security
    assert veto.lift_reason == "Redaction shipped in 1.1.0."


# Lifting a veto through a release: the page and the API ask `permissions.veto_through` which
# veto may be named there and `lift_refusal` whether this person may lift it, so they accept and
# refuse the same lifts, a veto carried forward to a later release included.


def _lift_scene(p: Personas, scene: str) -> tuple[Any, Release, Veto]:
    """(who tries, the release they go through, the veto) for one situation."""
    system = Actor.system_actor()
    vetoed = submitted_release(p.project, p.requester, version="1.0.0")
    scope = "release" if scene == "release-scoped, through a later release" else "carry_forward"
    veto = veto_cast(
        release=vetoed, actor=p.actor("security"), role="security", reason="Leaks PII.", scope=scope
    )
    colleague = get_user_model().objects.create_user("colleague")
    role_grant(project=p.project, user=colleague, role="requester", actor=system)
    later = submitted_release(p.project, colleague, version="1.1.0")
    if scene == "own":
        return p.security, vetoed, veto
    if scene == "own, lifted already":
        veto_lift(veto=veto, actor=p.actor("security"), reason="Fixed.")
        return p.security, vetoed, veto
    if scene == "own, by the sme":
        return p.sme, vetoed, veto
    if scene == "own, by an outsider":
        return p.outsider, vetoed, veto
    if scene in {"carried forward", "release-scoped, through a later release"}:
        return p.security, later, veto
    if scene == "carried forward, by its requester":
        role_grant(project=p.project, user=colleague, role="security", actor=system)
        return colleague, later, veto
    if scene == "carried forward, through another environment":
        staging = submitted_release(p.project, colleague, version="1.2.0", environment="staging")
        return p.security, staging, veto
    other = make_personas("other-project", prefix="o-")
    theirs = submitted_release(other.project, other.requester, artifact=later.artifact_digest)
    artifact_veto = veto_cast(
        release=theirs, actor=other.actor("security"), role="security", reason="Exfiltrates."
    )
    if scene == "same artifact, another project, holder in both":
        role_grant(project=other.project, user=p.security, role="security", actor=system)
    return p.security, later, artifact_veto


LIFT_SCENES = {
    "own": "lifted",
    "own, lifted already": "refused",
    "own, by the sme": "forbidden",
    "own, by an outsider": "not_found",
    "carried forward": "lifted",
    "carried forward, by its requester": "forbidden",
    "carried forward, through another environment": "not_found",
    "release-scoped, through a later release": "not_found",
    "same artifact, another project, holder in both": "lifted",
    "same artifact, another project, holder here only": "not_found",
}


def _api_lift(user: Any, release: Release, veto: Veto) -> str:
    client = Client()
    client.force_login(user)
    response = client.post(
        f"/api/v1/releases/{release.pk}/vetoes/{veto.pk}/lift",
        data='{"reason": "Fixed in the prompt filter."}',
        content_type="application/json",
    )
    return {200: "lifted", 403: "forbidden", 404: "not_found", 409: "refused"}[response.status_code]


def _page_lift(user: Any, release: Release, veto: Veto) -> tuple[bool, str]:
    """(whether the release page offers the lift, what posting the lift form does)."""
    client = Client()
    client.force_login(user)
    page = client.get(f"/releases/{release.pk}/")
    lift_url = reverse("web:lift", args=[release.pk, veto.pk])
    offered = page.status_code == 200 and f'action="{lift_url}"' in text(page)
    before = Veto.objects.get(pk=veto.pk).lifted_at
    response = client.post(lift_url, {"reason": "Fixed in the prompt filter."})
    if response.status_code in (403, 404):
        return offered, {403: "forbidden", 404: "not_found"}[response.status_code]
    assert response.status_code == 302
    lifted = before is None and Veto.objects.get(pk=veto.pk).lifted_at is not None
    return offered, "lifted" if lifted else "refused"


@pytest.mark.parametrize("scene", sorted(LIFT_SCENES))
def test_the_api_and_the_page_accept_and_refuse_the_same_lifts(personas, scene):
    user, release, veto = _lift_scene(personas, scene)
    outcomes = {}
    for door, attempt in (("api", _api_lift), ("page", lambda *a: _page_lift(*a)[1])):
        try:
            with transaction.atomic():
                outcomes[door] = attempt(user, release, veto)
                raise _Undo
        except _Undo:
            pass
    offered, _ = _page_lift(user, release, veto)

    assert outcomes == {"api": LIFT_SCENES[scene], "page": LIFT_SCENES[scene]}
    assert offered == (LIFT_SCENES[scene] == "lifted")
