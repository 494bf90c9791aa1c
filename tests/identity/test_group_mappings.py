"""IdP groups mapped to project roles. Mapping a guarded role is the governance change: it waits
for a current holder of the role (never its author); once in force, each sign-in grants and
revokes the role directly as IdP-sourced, and removing the mapping revokes at once. Nobody holds
a role from a mapping they made or confirmed, and a project admin no guarded role, whatever the
IdP says; changes of veto-role holders are told to the security holders."""

import json
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.test import Client

from releasegate.accounts.actors import Actor
from releasegate.accounts.selectors import roles_for
from releasegate.audit.models import AuditEvent
from releasegate.errors import Conflict, InvalidInput, NotPermitted
from releasegate.identity.models import ExternalIdentity, GroupMapping, IdpRoleGrant
from releasegate.identity.services import group_mapping_add, group_mapping_remove, sso_sign_in
from releasegate.releases.models import GovernanceChange
from releasegate.releases.services import (
    approval_give,
    governance_change_confirm,
    project_create,
    role_grant,
    role_revoke,
)
from tests.builders import submitted_release
from tests.notifications.test_notifications import eager_tasks  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

ISSUER = "https://idp.example"
IDENTITIES = "/projects/support-assistant/identities/"
API = "/api/v1/projects/support-assistant/group-mappings"


def sign_in(sub: str, groups: list[str], **claims: Any) -> Any:
    claims.setdefault("preferred_username", sub.removeprefix("sub-"))
    return sso_sign_in(
        issuer=ISSUER, claims={"sub": sub, "groups": groups, **claims}, groups_claim="groups"
    )


def known_to_the_idp(user: Any) -> None:
    ExternalIdentity.objects.create(issuer=ISSUER, subject=f"sub-{user.username}", user=user)


def confirmed(p: Any, group: str, role: str, confirmer: str | None = None) -> GroupMapping:
    """The admin maps `group` to a guarded `role`; a holder of it (by default the persona named
    after the role) confirms."""
    pending = group_mapping_add(project=p.project, actor=p.actor("admin"), group=group, role=role)
    assert isinstance(pending, GovernanceChange), pending
    governance_change_confirm(change=pending, actor=p.actor(confirmer or role))
    return GroupMapping.objects.get(project=p.project, group=group, role=role)


def actions_since(before: int) -> list[str]:
    return list(
        AuditEvent.objects.filter(id__gt=before).order_by("id").values_list("action", flat=True)
    )


def last_event() -> int:
    return AuditEvent.objects.latest("id").pk


# Mapping a guarded role is the governance change ------------------------------------------------


def test_mapping_a_guarded_role_waits_for_a_holder_and_grants_nothing_meanwhile(personas):
    pending = group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="ml", role="sme"
    )
    assert isinstance(pending, GovernanceChange)
    assert pending.kind == "group_mapping_add" and pending.group == "ml" and pending.is_pending
    assert not GroupMapping.objects.exists()
    result = sign_in("sub-nina", ["ml"])
    assert "sme" not in roles_for(result.user, personas.project)
    assert result.granted == [] and result.refused == []


def test_nobody_confirms_their_own_mapping_and_only_a_holder_of_the_role_does(personas):
    pending = group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="ml", role="sme"
    )
    for who in ("admin", "security", "auditor", "requester", "outsider"):
        with pytest.raises(NotPermitted) as refused:
            governance_change_confirm(change=pending, actor=personas.actor(who))
        assert refused.value.code == "may_not_confirm"
    governance_change_confirm(change=pending, actor=personas.actor("sme"))
    mapping = GroupMapping.objects.get()
    assert mapping.created_by == personas.admin and mapping.confirmed_by == personas.sme
    added = AuditEvent.objects.get(action="group_mapping_added")
    assert added.data["requested_by"] == "admin" and added.data["confirmed_by"] == "sme"
    assert added.actor == "sme"


def test_the_same_mapping_cannot_be_asked_for_twice_nor_made_twice(personas):
    group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="ml", role="sme"
    )
    with pytest.raises(Conflict) as twice:
        group_mapping_add(
            project=personas.project, actor=personas.actor("admin"), group="ml", role="sme"
        )
    assert twice.value.code == "already_pending"
    group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="ml", role="auditor"
    )
    with pytest.raises(InvalidInput):
        group_mapping_add(
            project=personas.project, actor=personas.actor("admin"), group="ml", role="auditor"
        )


@pytest.mark.parametrize("group", ["", " ml", "ml ", "a" * 201, "tab\there", None, ["ml"]])
def test_a_group_name_that_would_match_nobody_is_refused(personas, group):
    with pytest.raises(InvalidInput) as refused:
        group_mapping_add(
            project=personas.project, actor=personas.actor("admin"), group=group, role="auditor"
        )
    assert refused.value.errors[0].field == "group"


def test_only_a_project_admin_maps_groups(personas):
    for who in ("requester", "security", "sme", "auditor", "outsider"):
        with pytest.raises(NotPermitted):
            group_mapping_add(
                project=personas.project, actor=personas.actor(who), group="g", role="auditor"
            )


def test_a_guarded_role_nobody_holds_yet_is_mapped_at_once(db):
    system = Actor.system_actor()
    project = project_create(slug="fresh", name="Fresh", actor=system)
    olga = get_user_model().objects.create_user("olga")
    role_grant(project=project, user=olga, role="admin", actor=system)
    mapping = group_mapping_add(project=project, actor=Actor.for_user(olga), group="ml", role="sme")
    assert isinstance(mapping, GroupMapping) and mapping.confirmed_by is None
    nina = sign_in("sub-nina", ["ml"]).user
    assert "sme" in roles_for(nina, project)


# Once confirmed, sign-ins grant and revoke directly --------------------------------------------


def test_once_confirmed_each_sign_in_grants_and_revokes_sme_directly(personas):
    confirmed(personas, "ml", "sme")
    requests = GovernanceChange.objects.count()
    before = last_event()
    result = sign_in("sub-nina", ["ml"])
    nina = result.user
    assert result.granted == ["support-assistant:sme"]
    assert "sme" in roles_for(nina, personas.project)
    assert IdpRoleGrant.objects.get(user=nina).group == "ml"
    assert GovernanceChange.objects.count() == requests  # no second confirmation
    granted = AuditEvent.objects.get(id__gt=before, action="role_granted")
    assert granted.actor == "system"
    assert granted.data["source"] == "idp" and granted.data["group"] == "ml"
    assert granted.data["mapped_by"] == "admin" and granted.data["confirmed_by"] == "sme"

    # Effective: nina approves as sme.
    release = submitted_release(personas.project, personas.requester)
    approval_give(release=release, actor=Actor.for_user(nina), role="sme")

    result = sign_in("sub-nina", [])
    assert result.revoked == ["support-assistant:sme"]
    assert "sme" not in roles_for(nina, personas.project)
    assert not IdpRoleGrant.objects.exists()
    assert GovernanceChange.objects.count() == requests
    assert "role_revoked" in actions_since(before)


def test_an_unguarded_role_is_mapped_at_once_and_follows_the_group(personas):
    mapping = group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="audit", role="auditor"
    )
    assert isinstance(mapping, GroupMapping) and mapping.confirmed_by is None
    nina = sign_in("sub-nina", ["audit"]).user
    assert "auditor" in roles_for(nina, personas.project)
    sign_in("sub-nina", [])
    assert "auditor" not in roles_for(nina, personas.project)


def test_a_hand_granted_role_stays_when_the_group_goes(personas):
    group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="audit", role="auditor"
    )
    nina = sign_in("sub-nina", []).user
    role_grant(project=personas.project, user=nina, role="auditor", actor=personas.actor("admin"))
    sign_in("sub-nina", ["audit"])
    sign_in("sub-nina", [])
    assert "auditor" in roles_for(nina, personas.project)  # the admin's grant, not the IdP's
    assert not IdpRoleGrant.objects.exists()


def test_a_role_from_the_idp_revoked_by_hand_comes_back_while_the_group_is_mapped(personas):
    group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="audit", role="auditor"
    )
    nina = sign_in("sub-nina", ["audit"]).user
    role_revoke(project=personas.project, user=nina, role="auditor", actor=personas.actor("admin"))
    assert "auditor" not in roles_for(nina, personas.project)
    sign_in("sub-nina", ["audit"])
    assert "auditor" in roles_for(nina, personas.project)
    assert IdpRoleGrant.objects.get(user=nina).group == "audit"


# Whatever the IdP says ---------------------------------------------------------------------------


def test_nobody_is_granted_a_role_by_their_own_mapping(personas):
    """The admin maps a group they belong to: the IdP cannot make them grant themselves."""
    known_to_the_idp(personas.admin)
    confirmed(personas, "sec", "security")
    before = last_event()
    result = sign_in("sub-admin", ["sec"])
    assert "security" not in roles_for(personas.admin, personas.project)
    assert result.refused and "themselves" in result.refused[0]
    refused = AuditEvent.objects.get(id__gt=before, action="idp_role_refused")
    assert refused.project_id == personas.project.pk
    assert refused.data["code"] == "self_grant" and refused.data["user"] == "admin"
    signed_in = AuditEvent.objects.get(id__gt=before, action="sso_signed_in")
    assert signed_in.data["refused"] == result.refused


def test_the_confirmer_gains_nothing_from_the_mapping_they_confirmed(personas):
    p = personas
    sme2 = get_user_model().objects.create_user("sme2")
    role_grant(project=p.project, user=sme2, role="sme", actor=Actor.system_actor())
    confirmed(p, "ml", "sme", confirmer="sme")
    # Later the confirmer's own sme role is revoked by hand (another holder confirms) ...
    revocation = role_revoke(project=p.project, user=p.sme, role="sme", actor=p.actor("admin"))
    assert revocation is not None
    governance_change_confirm(change=revocation, actor=Actor.for_user(sme2))
    # ... and the group they put themselves in does not give it back.
    known_to_the_idp(p.sme)
    result = sign_in("sub-sme", ["ml"])
    assert "sme" not in roles_for(p.sme, p.project)
    assert result.refused == [
        "support-assistant:sme: Nobody is granted a role by a mapping they confirmed themselves."
    ]


def test_a_project_admin_gets_no_guarded_role_from_the_idp(personas):
    olga = get_user_model().objects.create_user("olga")
    role_grant(project=personas.project, user=olga, role="admin", actor=Actor.system_actor())
    known_to_the_idp(olga)
    confirmed(personas, "ml", "sme")
    result = sign_in("sub-olga", ["ml"])
    assert "sme" not in roles_for(olga, personas.project)
    assert "admin_not_from_idp" in AuditEvent.objects.filter(action="idp_role_refused").values_list(
        "data__code", flat=True
    )
    assert "A project admin does not get the guarded role sme" in result.refused[0]
    # Someone who names no reviewers, in the same group, gets it.
    assert "sme" in roles_for(sign_in("sub-nina", ["ml"]).user, personas.project)


def test_an_admin_from_the_idp_loses_the_guarded_role_and_gets_it_back_as_admin_goes(personas):
    group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="leads", role="admin"
    )
    confirmed(personas, "ml", "sme")
    first = sign_in("sub-nina", ["leads", "ml"])
    nina = first.user
    assert roles_for(nina, personas.project) == {"admin"}
    assert first.refused == [
        "support-assistant:sme: A project admin does not get the guarded role sme from an IdP "
        "group; a grant by hand, confirmed by a sme holder, is the way."
    ]
    second = sign_in("sub-nina", ["ml"])
    assert roles_for(nina, personas.project) == {"sme"}
    assert second.revoked == ["support-assistant:admin"]
    assert second.granted == ["support-assistant:sme"]
    third = sign_in("sub-nina", ["leads", "ml"])
    assert roles_for(nina, personas.project) == {"admin"}
    assert third.revoked == ["support-assistant:sme"]


def test_requester_given_sme_by_the_idp_still_cannot_approve_their_own_release(personas):
    known_to_the_idp(personas.requester)
    confirmed(personas, "ml", "sme")
    release = submitted_release(personas.project, personas.requester)
    sign_in("sub-requester", ["ml"])
    assert "sme" in roles_for(personas.requester, personas.project)
    with pytest.raises(NotPermitted) as refused:
        approval_give(release=release, actor=personas.actor("requester"), role="sme")
    assert refused.value.code == "requester_cannot_approve"


# Removing a mapping ----------------------------------------------------------------------------


def test_removing_a_guarded_mapping_waits_for_a_holder_then_revokes_at_once(personas):
    mapping = confirmed(personas, "ml", "sme")
    nina = sign_in("sub-nina", ["ml"]).user
    pending = group_mapping_remove(mapping=mapping, actor=personas.actor("admin"))
    assert pending is not None and pending.kind == "group_mapping_remove"
    assert "sme" in roles_for(nina, personas.project)  # nothing yet
    with pytest.raises(NotPermitted):
        governance_change_confirm(change=pending, actor=personas.actor("admin"))
    before = last_event()
    governance_change_confirm(change=pending, actor=personas.actor("sme"))
    # At once, without nina signing in again.
    assert "sme" not in roles_for(nina, personas.project)
    assert not GroupMapping.objects.exists() and not IdpRoleGrant.objects.exists()
    assert actions_since(before) == [
        "group_mapping_removed",
        "role_revoked",
        "governance_change_applied",
    ]
    revoked = AuditEvent.objects.get(id__gt=before, action="role_revoked")
    assert revoked.data["reason"] == "the group mapping was removed"
    assert revoked.data["user"] == nina.username


def test_removing_a_mapping_keeps_the_role_another_mapping_gives(personas):
    confirmed(personas, "ml", "sme")
    experts = confirmed(personas, "experts", "sme")
    nina = sign_in("sub-nina", ["experts", "ml"]).user
    assert IdpRoleGrant.objects.get(user=nina).group == "experts"
    pending = group_mapping_remove(mapping=experts, actor=personas.actor("admin"))
    assert pending is not None
    governance_change_confirm(change=pending, actor=personas.actor("sme"))
    assert "sme" in roles_for(nina, personas.project)
    assert IdpRoleGrant.objects.get(user=nina).group == "ml"


def test_removing_an_unguarded_mapping_revokes_at_once(personas):
    mapping = group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="audit", role="auditor"
    )
    nina = sign_in("sub-nina", ["audit"]).user
    assert group_mapping_remove(mapping=mapping, actor=personas.actor("admin")) is None
    assert "auditor" not in roles_for(nina, personas.project)


# Who is told -----------------------------------------------------------------------------------


def test_a_change_of_veto_role_holders_by_the_idp_is_told_to_the_security_holders(
    personas,
    eager_tasks: None,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
):
    p = personas
    for user in (p.security, p.sme, p.admin):
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])
    confirmed(p, "sec", "security")
    group_mapping_add(project=p.project, actor=p.actor("admin"), group="audit", role="auditor")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        sign_in("sub-nina", ["sec", "audit"], email="nina@example.com")
    (granted,) = mail.outbox  # the auditor role is no veto role: nobody is told of it
    assert granted.bcc == ["security@example.com"]  # not nina herself
    assert "support-assistant: who holds security changed by single sign-on" in granted.subject
    assert "nina now holds it (from the IdP group sec)" in granted.body
    with django_capture_on_commit_callbacks(execute=True):
        sign_in("sub-nina", [], email="nina@example.com")
    assert mail.outbox[1].bcc == ["security@example.com"]
    assert "nina no longer holds it" in mail.outbox[1].body


def test_a_mapping_request_is_told_to_those_who_may_confirm_it(
    personas,
    eager_tasks: None,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
):
    for user in (personas.security, personas.sme, personas.admin):
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])
    with django_capture_on_commit_callbacks(execute=True):
        group_mapping_add(
            project=personas.project, actor=personas.actor("admin"), group="ml", role="sme"
        )
    (told,) = mail.outbox
    assert told.bcc == ["sme@example.com"]
    assert "mapping the IdP group ml to the sme role" in told.body


# Pages, command, API ---------------------------------------------------------------------------


def test_pages_show_idp_roles_apart_from_hand_grants_and_the_waiting_mapping(
    personas, django_assert_num_queries
):
    confirmed(personas, "ml", "sme")
    sign_in("sub-nina", ["ml"])
    group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="sec", role="security"
    )
    client = Client()
    client.force_login(personas.admin)
    client.get(IDENTITIES)
    # session, user, project, roles, policy, mappings, requests, IdP grants, holders
    with django_assert_num_queries(9):
        response = client.get(IDENTITIES)
    assert response.status_code == 200
    page = response.content.decode()
    idp = page.split('id="roles-from-idp"')[1].split("</table>")[0]
    by_hand = page.split('id="roles-by-hand"')[1].split("</table>")[0]
    assert "nina" in idp and "ml" in idp and "sme" in idp
    assert "nina" not in by_hand and "admin" in by_hand
    mappings = page.split('id="group-mappings"')[1].split("</table>")[0]
    assert "<td>ml</td><td>sme</td><td>admin</td><td>sme</td>" in mappings
    waiting = page.split('id="group-mapping-requests"')[1].split("</ul>")[0]
    assert "map sec to security, asked by admin; waits for a security holder" in waiting

    project_page = client.get("/projects/support-assistant/").content.decode()
    assert "from the IdP group ml" in project_page
    assert "IdP group sec to security" in project_page  # the request, to confirm there


def test_the_pages_map_a_guarded_role_as_a_request(personas):
    client = Client()
    client.force_login(personas.admin)
    response = client.post(f"{IDENTITIES}groups/", {"group": "ml", "role": "sme"}, follow=True)
    assert "waits for a sme holder other than you" in response.content.decode()
    assert not GroupMapping.objects.exists()
    sme = Client()
    sme.force_login(personas.sme)
    change = GovernanceChange.objects.get(kind="group_mapping_add")
    confirm = f"/projects/support-assistant/requests/{change.pk}/confirm/"
    assert sme.post(confirm, {"reason": ""}).status_code == 302
    assert GroupMapping.objects.get().confirmed_by == personas.sme


def test_outsider_gets_404_for_the_identities_page(personas):
    client = Client()
    client.force_login(personas.outsider)
    assert client.get(IDENTITIES).status_code == 404


def test_group_mapping_command_adds_lists_and_removes(personas):
    def run(*args: str) -> str:
        out = StringIO()
        call_command("group_mapping", *args, stdout=out)
        return out.getvalue().strip()

    added = run(
        "add",
        "--project",
        "support-assistant",
        "--as",
        "admin",
        "--group",
        "audit",
        "--role",
        "auditor",
    )
    audit = GroupMapping.objects.get()
    assert added == f"added group mapping {audit.pk}: audit -> auditor"
    asked = run(
        "add", "--project", "support-assistant", "--as", "admin", "--group", "ml", "--role", "sme"
    )
    change = GovernanceChange.objects.get(kind="group_mapping_add")
    assert asked.startswith(f"request {change.pk} waits for a sme holder other than admin")
    assert run("list", "--project", "support-assistant").splitlines() == [
        f"{audit.pk}\taudit\tauditor\tadmin\t-",
        f"pending request {change.pk}\tadd\tml\tsme\tadmin",
    ]
    assert (
        run("remove", "--id", str(audit.pk), "--as", "admin") == f"removed group mapping {audit.pk}"
    )
    assert not GroupMapping.objects.exists()
    assert AuditEvent.objects.filter(action="group_mapping_removed").exists()


def api_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_api_maps_lists_and_removes_group_mappings(personas, django_assert_num_queries):
    client = api_client(personas.admin)
    made = client.post(
        API, json.dumps({"group": "audit", "role": "auditor"}), content_type="application/json"
    )
    assert made.status_code == 201, made.content
    assert made.json()["confirmed_by"] is None
    asked = client.post(
        API, json.dumps({"group": "ml", "role": "sme"}), content_type="application/json"
    )
    assert asked.status_code == 202
    request = asked.json()["request"]
    assert request["kind"] == "group_mapping_add" and request["group"] == "ml"
    assert request["may_confirm"] is False  # its author
    listed_by_sme = (
        api_client(personas.sme)
        .get("/api/v1/projects/support-assistant/governance-requests")
        .json()["results"]
    )
    assert [(r["group"], r["may_confirm"]) for r in listed_by_sme] == [("ml", True)]
    with django_assert_num_queries(6):
        listed = client.get(API)
    assert [(m["group"], m["role"]) for m in listed.json()["results"]] == [("audit", "auditor")]
    assert client.delete(f"{API}/{made.json()['id']}").status_code == 204
    assert client.get(API).json()["results"] == []
    assert client.delete(f"{API}/nope").status_code == 404


def test_the_api_refuses_bad_mappings_and_callers(personas):
    admin = api_client(personas.admin)
    bad = admin.post(
        API, json.dumps({"group": " ml", "role": "sme"}), content_type="application/json"
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "group"
    unknown = admin.post(
        API, json.dumps({"group": "ml", "role": "root"}), content_type="application/json"
    )
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "role"
    assert api_client(personas.outsider).get(API).status_code == 404
    body = json.dumps({"group": "ml", "role": "auditor"})
    assert (
        api_client(personas.sme).post(API, body, content_type="application/json").status_code == 403
    )
