"""POST /api/v1/oidc/exchange against a local issuer: the happy path and every refusal."""

import json
import threading
import time
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from releasegate.accounts.models import ApiToken
from releasegate.accounts.tokens import token_revoke
from releasegate.audit.models import AuditEvent
from tests.identity.issuer import Key, LocalIssuer

URL = "/api/v1/oidc/exchange"


def exchange(token: Any, **extra: Any) -> Any:
    body = {"token": token, **extra}
    return Client().post(URL, json.dumps(body), content_type="application/json")


def refused(response: Any, code: str) -> None:
    assert response.status_code == 401, response.content
    assert response.json()["code"] == code
    assert "support-assistant" not in response.content.decode()


@pytest.mark.django_db
def test_matching_token_is_exchanged_for_a_short_lived_service_token(issuer, add_policy):
    policy = add_policy()
    response = exchange(issuer.token())
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token"].startswith("rgs_")
    assert body["project"] == "support-assistant"
    assert body["scopes"] == ["gate:read", "releases:write"]
    minted = ApiToken.objects.get(oidc_policy=policy)
    assert minted.kind == "service" and minted.project_id == policy.project_id
    assert minted.expires_at <= timezone.now() + timedelta(minutes=10, seconds=5)
    assert minted.created_by == policy.created_by  # so its admin cannot approve its releases
    # The minted token is an ordinary bearer token: it reads the gate (404 for an unknown
    # version, not 401).
    gate = Client().get(
        "/api/v1/gate?project=support-assistant&version=9.9.9",
        HTTP_AUTHORIZATION=f"Bearer {body['token']}",
    )
    assert gate.status_code == 404


@pytest.mark.django_db
def test_audit_event_names_policy_and_claims(issuer, add_policy):
    policy = add_policy()
    assert exchange(issuer.token()).status_code == 201
    event = AuditEvent.objects.get(action="token_minted_oidc")
    assert event.project_id == policy.project_id
    assert event.data["policy"] == policy.pk
    claims = event.data["claims"]
    assert claims["sub"] == "repo:acme/app:ref:refs/heads/main"
    assert claims["repository"] == "acme/app"
    assert claims["workflow"] == "release"
    assert claims["run_id"] == "4242"
    assert "token" not in json.dumps(event.data).lower().replace("token_", "")


@pytest.mark.django_db
def test_es256_tokens_are_exchanged_too(issuer, add_policy):
    add_policy()
    assert exchange(issuer.token(key=issuer.keys[1])).status_code == 201


@pytest.mark.django_db
def test_minted_token_can_be_revoked(issuer, add_policy, personas):
    add_policy()
    body = exchange(issuer.token()).json()
    token_revoke(token=ApiToken.objects.get(), actor=personas.actor("admin"))
    gate = Client().get(
        "/api/v1/gate?project=support-assistant&version=1",
        HTTP_AUTHORIZATION=f"Bearer {body['token']}",
    )
    assert gate.status_code == 401 and gate.json()["code"] == "token_revoked"


@pytest.mark.django_db
def test_issuer_outside_the_allow_list_is_untrusted(issuer, add_policy):
    add_policy()
    other = LocalIssuer()
    try:
        refused(exchange(other.token()), "oidc_untrusted_issuer")
    finally:
        other.close()


@pytest.mark.django_db
def test_token_signed_by_a_key_the_issuer_does_not_publish_is_invalid(issuer, add_policy):
    add_policy()
    forged = Key("RSA", kid=issuer.keys[0].kid)
    refused(exchange(issuer.token(key=forged)), "oidc_invalid")


@pytest.mark.django_db
def test_alg_none_is_invalid(issuer, add_policy):
    add_policy()
    unsigned = jwt.encode(issuer.claims(), None, algorithm="none", headers={"kid": "x"})
    refused(exchange(unsigned), "oidc_invalid")


@pytest.mark.django_db
def test_hs256_signed_with_the_public_key_is_invalid(issuer, add_policy):
    """The classic key confusion: an HMAC 'signed' with the issuer's public key."""
    add_policy()
    from cryptography.hazmat.primitives import serialization

    public_pem = (
        issuer.keys[0]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.keys[0].kid}
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        f"{b64(json.dumps(header).encode())}.{b64(json.dumps(issuer.claims()).encode())}"
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    refused(exchange(f"{signing_input}.{b64(signature)}"), "oidc_invalid")


@pytest.mark.django_db
def test_rs256_header_on_an_ec_key_is_invalid(issuer, add_policy):
    add_policy()
    token = issuer.token(key=issuer.keys[0])
    header, rest = token.split(".", 1)
    import base64

    swapped = {"alg": "RS256", "typ": "JWT", "kid": issuer.keys[1].kid}
    encoded = base64.urlsafe_b64encode(json.dumps(swapped).encode()).rstrip(b"=").decode()
    refused(exchange(f"{encoded}.{rest}"), "oidc_invalid")


@pytest.mark.django_db
def test_malformed_token_is_invalid(issuer, add_policy):
    add_policy()
    refused(exchange("not.a.jwt"), "oidc_invalid")


@pytest.mark.django_db
def test_expired_token_is_refused(issuer, add_policy):
    add_policy()
    now = int(time.time())
    refused(exchange(issuer.token(iat=now - 900, nbf=now - 900, exp=now - 120)), "oidc_expired")


@pytest.mark.django_db
def test_expiry_has_a_small_leeway(issuer, add_policy):
    add_policy()
    now = int(time.time())
    assert exchange(issuer.token(iat=now - 300, exp=now - 20)).status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_token_from_the_future_is_invalid(issuer, add_policy, claim):
    add_policy()
    refused(exchange(issuer.token(**{claim: int(time.time()) + 600})), "oidc_invalid")


@pytest.mark.django_db
@pytest.mark.parametrize("claim", ["exp", "iat", "jti", "sub"])
def test_token_without_a_required_claim_is_invalid(issuer, add_policy, claim):
    add_policy()
    refused(exchange(issuer.token(**{claim: ...})), "oidc_invalid")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "aud", ["releasegate-staging", "releasegat", ["releasegate", "other"], ..., ""]
)
def test_audience_must_match_exactly(issuer, add_policy, aud):
    add_policy()
    refused(exchange(issuer.token(aud=aud)), "oidc_audience")


@pytest.mark.django_db
def test_token_matching_no_policy_is_refused(issuer, add_policy):
    add_policy()
    refused(exchange(issuer.token(repository_id="222222")), "oidc_no_policy")


@pytest.mark.django_db
def test_removed_policy_mints_no_more(issuer, add_policy, personas):
    from releasegate.identity.services import trust_policy_remove

    policy = add_policy()
    trust_policy_remove(policy=policy, actor=personas.actor("admin"))
    refused(exchange(issuer.token()), "oidc_audience")


@pytest.mark.django_db
def test_token_is_exchanged_once(issuer, add_policy):
    add_policy()
    token = issuer.token()
    assert exchange(token).status_code == 201
    refused(exchange(token), "oidc_replayed")
    assert ApiToken.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_racing_exchanges_of_one_token_mint_one(issuer, add_policy):
    add_policy()
    token = issuer.token()
    exchange(issuer.token())  # warm the key cache, so both racers reach the database together
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def race() -> None:
        barrier.wait()
        try:
            codes.append(exchange(token).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(codes) == [201, 401]
    assert ApiToken.objects.count() == 2  # the warm-up and one racer


@pytest.mark.django_db
def test_a_rotated_key_is_picked_up(issuer, add_policy):
    add_policy()
    assert exchange(issuer.token()).status_code == 201
    new = Key("RSA")
    issuer.keys = [new]
    hits = issuer.jwks_hits
    # The cache is fresh, but a new kid past the one-minute floor makes one refetch.
    from releasegate.identity import issuers as module

    for entry in module._cache.values():
        entry.fetched_at -= 61
    assert exchange(issuer.token(key=new)).status_code == 201
    assert issuer.jwks_hits == hits + 1


@pytest.mark.django_db
def test_unknown_key_ids_refetch_at_most_once_a_minute(issuer, add_policy):
    add_policy()
    assert exchange(issuer.token()).status_code == 201
    hits = issuer.jwks_hits
    for _ in range(5):
        refused(exchange(issuer.token(key=Key("RSA"))), "oidc_invalid")
    assert issuer.jwks_hits == hits


@pytest.mark.django_db
def test_issuer_that_hangs_is_a_503_within_the_timeout(issuer, add_policy):
    add_policy()
    issuer.hang = True
    started = time.monotonic()
    response = exchange(issuer.token())
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["code"] == "oidc_issuer_unavailable"
    assert elapsed < 3  # the timeout is 1 s for the discovery fetch


@pytest.mark.django_db
def test_issuer_that_is_down_is_a_503(issuer, add_policy):
    add_policy()
    token = issuer.token()
    issuer.close()
    response = exchange(token)
    assert response.status_code == 503
    assert response.json()["code"] == "oidc_issuer_unavailable"


@pytest.mark.django_db
def test_known_keys_still_work_while_the_issuer_is_down(issuer, add_policy):
    add_policy()
    assert exchange(issuer.token()).status_code == 201
    issuer.hang = True
    assert exchange(issuer.token()).status_code == 201


@pytest.mark.django_db
def test_plain_http_issuer_is_refused_without_the_loopback_setting(issuer, add_policy, settings):
    add_policy()
    settings.RELEASEGATE_OIDC_ALLOW_LOOPBACK_HTTP = False
    refused(exchange(issuer.token()), "oidc_untrusted_issuer")


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{}, {"token": 5}, {"token": ""}, {"token": "x" * 20000}])
def test_body_without_a_token_is_a_400_naming_the_field(issuer, body):
    response = Client().post(URL, json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "token"


@pytest.mark.django_db
def test_policies_of_two_projects_need_the_project_named(issuer, add_policy, personas):
    from tests.conftest import make_personas

    other = make_personas("other-project", prefix="o-")
    add_policy()
    add_policy(project=other.project, actor=other.actor("admin"))
    refused(exchange(issuer.token()), "oidc_no_policy")
    response = exchange(issuer.token(), project="other-project")
    assert response.status_code == 201 and response.json()["project"] == "other-project"


@pytest.mark.django_db
def test_the_most_specific_policy_of_a_project_wins(issuer, add_policy):
    add_policy(scopes=["gate:read", "releases:write", "releases:promote"])
    add_policy(claims={"repository_id": "111111", "ref": "refs/heads/main"}, scopes=["gate:read"])
    assert exchange(issuer.token()).json()["scopes"] == ["gate:read"]


@pytest.mark.django_db
def test_ids_sent_as_numbers_match_their_decimal_text(issuer, add_policy):
    add_policy()
    assert exchange(issuer.token(repository_id=111111)).status_code == 201
