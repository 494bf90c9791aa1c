"""Holders are told when a veto revokes a signed clearance (notification event
`attestation_revoked`), through the same webhook delivery as every other event."""

import json

import pytest

from releasegate.notifications.models import Delivery
from tests.api.conftest import Caller, service_token
from tests.attestations.conftest import promoted, veto
from tests.notifications.test_notifications import Receiver, webhook

pytestmark = pytest.mark.django_db


def test_a_revoking_veto_tells_targets_subscribed_to_attestation_revoked(
    personas, receiver: Receiver, eager_tasks, django_capture_on_commit_callbacks
):
    release = promoted(personas)
    caller = Caller("ci", token=service_token(personas, "attestations:read")[1])
    assert caller.request("GET", f"/api/v1/releases/{release.pk}/attestation").status_code == 200
    target, _ = webhook(personas, receiver.url, "attestation_revoked")
    with django_capture_on_commit_callbacks(execute=True):
        cast = veto(personas, release)
    assert len(receiver.requests) == 1
    payload = json.loads(receiver.requests[0][1])
    assert payload["event"] == "attestation_revoked"
    assert payload["release"]["id"] == release.pk
    assert payload["revocation"] == {
        "cause": f"veto:{cast.pk}",
        "reason": "prompt injection reaches the CRM tool",
    }
    assert (
        "signed clearance of support-assistant 1.0.0 (production) was revoked" in (payload["text"])
    )
    assert Delivery.objects.get(target=target).status == "delivered"


def test_a_veto_that_revokes_nothing_sends_no_revocation_notice(
    personas, receiver: Receiver, eager_tasks, django_capture_on_commit_callbacks
):
    release = promoted(personas)  # never attested
    webhook(personas, receiver.url, "attestation_revoked")
    with django_capture_on_commit_callbacks(execute=True):
        veto(personas, release)
    assert receiver.requests == []
