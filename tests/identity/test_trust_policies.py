"""Trust policies: what they must pin, and the incidents of CI federation elsewhere, each a case.
Also the API and the `trust_policy` command."""

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from releasegate.audit.models import AuditEvent
from releasegate.errors import InvalidInput, NotPermitted
from releasegate.identity.models import TrustPolicy
from tests.identity.test_exchange import exchange, refused

SHARED = "acme/shared/.github/workflows/deploy.yml@refs/heads/main"


def claims_error(add_policy: Any, claims: dict[str, str]) -> str:
    with pytest.raises(InvalidInput) as refused_policy:
        add_policy(claims=claims)
    assert not TrustPolicy.objects.exists()
    return " ".join(e.message for e in refused_policy.value.errors if e.field == "claims")


@pytest.mark.django_db
def test_policy_without_claims_is_refused_because_it_trusts_the_whole_issuer(add_policy):
    assert "every pipeline of the issuer" in claims_error(add_policy, {})


@pytest.mark.django_db
@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "repo:acme/app:ref:refs/heads/main"},
        {"repository": "acme/app"},
        {"repository_owner": "acme", "repository": "acme/app"},
        {"repository_owner_id": "900"},
        {"project_path": "acme/app"},
        {"namespace_id": "77"},
    ],
    ids=["sub-only", "repo-name", "owner-and-repo-names", "owner-id-only", "gitlab-path", "ns"],
)
def test_policy_pinning_only_names_is_refused_with_why(add_policy, claims):
    message = claims_error(add_policy, claims)
    assert "repository_id" in message and "re-creates" in message


@pytest.mark.django_db
def test_policy_pinning_only_a_reusable_workflow_is_refused(add_policy):
    """job_workflow_ref is the same in every repository that calls the shared workflow."""
    assert "job_workflow_ref" in claims_error(add_policy, {"job_workflow_ref": SHARED})


@pytest.mark.django_db
@pytest.mark.parametrize(
    "claims",
    [
        {"repository_id": "111111"},
        {"repository_owner_id": "900", "repository": "acme/app"},
        {"project_id": "42"},
        {"namespace_id": "77", "project_path": "acme/app"},
    ],
)
def test_policy_pinning_an_immutable_id_is_accepted(add_policy, claims):
    assert add_policy(claims=claims).claims == claims


@pytest.mark.django_db
@pytest.mark.parametrize(
    "claims",
    [
        {"repository_id": ""},
        {"repository_id": " 111111"},
        {"repository_id": "111111", "aud": "x"},
        {"repository_id": "111111", "Bad-Name": "x"},
    ],
)
def test_empty_padded_reserved_or_odd_claims_are_refused(add_policy, claims):
    with pytest.raises(InvalidInput):
        add_policy(claims=claims)


@pytest.mark.django_db
def test_recreated_repository_with_the_same_name_is_not_trusted(issuer, add_policy):
    """acme/app deleted and re-created gets a new repository_id."""
    add_policy(claims={"repository_id": "111111"})
    refused(exchange(issuer.token(repository_id="999999")), "oidc_no_policy")


@pytest.mark.django_db
def test_repository_name_taken_by_a_new_owner_is_not_trusted(issuer, add_policy):
    """The organisation acme renamed or deleted, its name taken by someone else: same names,
    another owner id."""
    add_policy(claims={"repository_owner_id": "900", "repository": "acme/app"})
    token = issuer.token(repository_id="999999", repository_owner_id="901")
    refused(exchange(token), "oidc_no_policy")


@pytest.mark.django_db
def test_another_repository_calling_the_same_reusable_workflow_is_not_trusted(issuer, add_policy):
    add_policy(claims={"repository_id": "111111", "job_workflow_ref": SHARED})
    caller = issuer.token(repository="evil/fork", repository_id="333333", job_workflow_ref=SHARED)
    refused(exchange(caller), "oidc_no_policy")
    assert exchange(issuer.token(job_workflow_ref=SHARED)).status_code == 201


@pytest.mark.django_db
def test_workflow_ref_is_not_job_workflow_ref(issuer, add_policy):
    """A policy on the reusable workflow that runs the job is not met by the caller's
    workflow_ref carrying that value: claims are matched by name."""
    add_policy(claims={"repository_id": "111111", "job_workflow_ref": SHARED})
    token = issuer.token(workflow_ref=SHARED, job_workflow_ref="acme/app/.github/workflows/x.yml@x")
    refused(exchange(token), "oidc_no_policy")


@pytest.mark.django_db
@pytest.mark.parametrize("environment", [..., None, "", "Production", "production "])
def test_absent_or_inexact_claim_never_matches(issuer, add_policy, environment):
    add_policy(claims={"repository_id": "111111", "environment": "production"})
    refused(exchange(issuer.token(environment=environment)), "oidc_no_policy")


@pytest.mark.django_db
def test_exact_environment_claim_matches(issuer, add_policy):
    add_policy(claims={"repository_id": "111111", "environment": "production"})
    assert exchange(issuer.token(environment="production")).status_code == 201


@pytest.mark.django_db
def test_values_are_not_patterns(issuer, add_policy):
    add_policy(claims={"repository_id": "111111", "ref": "refs/heads/*"})
    refused(exchange(issuer.token(ref="refs/heads/main")), "oidc_no_policy")


@pytest.mark.django_db
@pytest.mark.parametrize("minutes", [4, 16, 60])
def test_lifetime_is_at_most_fifteen_minutes(add_policy, minutes):
    from datetime import timedelta

    with pytest.raises(InvalidInput) as error:
        add_policy(lifetime=timedelta(minutes=minutes))
    assert error.value.errors[0].field == "lifetime"


@pytest.mark.django_db
def test_issuer_outside_the_allow_list_is_refused(add_policy):
    with pytest.raises(InvalidInput) as error:
        add_policy(issuer="https://evil.example")
    assert error.value.errors[0].field == "issuer"


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["requester", "security", "sme", "auditor", "outsider"])
def test_only_the_project_admin_sets_trust_policies(add_policy, personas, who):
    with pytest.raises(NotPermitted):
        add_policy(actor=personas.actor(who))


@pytest.mark.django_db
def test_adding_and_removing_is_audited(add_policy, personas):
    from releasegate.identity.services import trust_policy_remove

    policy = add_policy()
    trust_policy_remove(policy=policy, actor=personas.actor("admin"))
    actions = list(AuditEvent.objects.values_list("action", flat=True).order_by("seq"))
    assert actions[-2:] == ["trust_policy_added", "trust_policy_removed"]


# API --------------------------------------------------------------------------------------------


def api_client(user: Any) -> Client:
    client = Client(enforce_csrf_checks=False)
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_admin_adds_lists_and_removes_a_policy_through_the_api(
    issuer, personas, django_assert_num_queries
):
    client = api_client(personas.admin)
    url = "/api/v1/projects/support-assistant/trust-policies"
    body = {
        "issuer": issuer.url,
        "audience": "releasegate",
        "claims": {"repository_id": "111111"},
        "scopes": ["gate:read"],
        "lifetime": "5m",
    }
    created = client.post(url, json.dumps(body), content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["lifetime_seconds"] == 300
    with django_assert_num_queries(6):
        listed = client.get(url)
    assert [p["id"] for p in listed.json()["results"]] == [created.json()["id"]]
    assert client.delete(f"{url}/{created.json()['id']}").status_code == 204
    assert client.get(url).json()["results"] == []


@pytest.mark.django_db
def test_api_refuses_a_name_only_policy_with_a_400_naming_claims(issuer, personas):
    body = {
        "issuer": issuer.url,
        "audience": "a",
        "claims": {"repository": "acme/app"},
        "scopes": ["gate:read"],
    }
    response = api_client(personas.admin).post(
        "/api/v1/projects/support-assistant/trust-policies",
        json.dumps(body),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "claims"


@pytest.mark.django_db
def test_outsider_sees_no_trust_policies(add_policy, personas):
    add_policy()
    response = api_client(personas.outsider).get(
        "/api/v1/projects/support-assistant/trust-policies"
    )
    assert response.status_code == 404


@pytest.mark.django_db
def test_a_token_cannot_set_trust_policies(issuer, add_policy, personas):
    """A minted (or any) token never widens who may mint tokens."""
    add_policy(scopes=["gate:read", "releases:write", "releases:promote"])
    minted = exchange(issuer.token()).json()["token"]
    body = {
        "issuer": issuer.url,
        "audience": "x",
        "claims": {"repository_id": "5"},
        "scopes": ["gate:read"],
    }
    response = Client().post(
        "/api/v1/projects/support-assistant/trust-policies",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {minted}",
    )
    assert response.status_code == 403


# The command --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_trust_policy_command_adds_lists_and_removes(issuer, personas):
    out = StringIO()
    call_command(
        "trust_policy",
        "add",
        "--project",
        "support-assistant",
        "--as",
        "admin",
        "--issuer",
        issuer.url,
        "--audience",
        "releasegate",
        "--claim",
        "repository_id=111111",
        "--claim",
        "ref=refs/heads/main",
        "--scopes",
        "gate:read,releases:write",
        "--lifetime",
        "10m",
        stdout=out,
    )
    policy = TrustPolicy.objects.get()
    assert out.getvalue().strip() == f"added trust policy {policy.pk}"
    assert policy.claims == {"repository_id": "111111", "ref": "refs/heads/main"}
    listing = StringIO()
    call_command("trust_policy", "list", "--project", "support-assistant", stdout=listing)
    assert listing.getvalue().startswith(f"{policy.pk}\t{issuer.url}\treleasegate\t")
    call_command("trust_policy", "remove", "--id", str(policy.pk), "--as", "admin", stdout=out)
    assert TrustPolicy.objects.get().removed_at is not None


@pytest.mark.django_db
def test_trust_policy_command_says_why_a_name_only_policy_is_refused(issuer, personas):
    with pytest.raises(CommandError) as error:
        call_command(
            "trust_policy",
            "add",
            "--project",
            "support-assistant",
            "--as",
            "admin",
            "--issuer",
            issuer.url,
            "--audience",
            "releasegate",
            "--claim",
            "repository=acme/app",
            "--scopes",
            "gate:read",
        )
    assert "repository_id" in str(error.value)
