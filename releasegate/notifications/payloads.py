"""What a notification says: a Slack-compatible `text` plus structured fields for machines."""

from typing import Any

from django.utils import timezone

from releasegate.attestations.models import Revocation
from releasegate.notifications.incidents import incident_text
from releasegate.releases.gate import GateDecision
from releasegate.releases.models import Release, Veto


def _escape(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>); a veto reason must not ping anyone.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _release_fields(release: Release) -> dict[str, Any]:
    return {
        "id": release.pk,
        "version": release.version,
        "environment": release.environment,
        "state": release.state,
        "artifact_digest": release.artifact_digest,
        "manifest_digest": release.manifest_digest,
    }


def _base(event: str, release: Release, text: str) -> dict[str, Any]:
    return {
        "text": text,
        "event": event,
        "project": release.project.slug,
        "release": _release_fields(release),
        "occurred_at": timezone.now().isoformat().replace("+00:00", "Z"),
    }


def _name(release: Release) -> str:
    return _escape(f"{release.project.slug} {release.version} ({release.environment})")


def event_payload(
    *, event: str, release: Release, veto_id: int | None, incident_id: int | None = None
) -> tuple[dict[str, Any], str]:
    """The body for `event` and the key that makes one occurrence one delivery per target."""
    if incident_id is not None:
        text, fields, key = incident_text(event=event, incident_id=incident_id)
        return {**_base(event, release, f"{_name(release)}: {_escape(text)}"), **fields}, key
    if event in {"veto_cast", "veto_lifted"} and veto_id is not None:
        veto = Veto.objects.select_related("user", "lifted_by").get(pk=veto_id)
        by = _escape(f"{veto.user.get_username()} ({veto.role})")
        if event == "veto_cast":
            text = f"{_name(release)} was vetoed by {by}: {_escape(veto.reason)}"
        else:
            lifter = veto.lifted_by.get_username() if veto.lifted_by else "someone"
            text = (
                f"The veto by {by} on {_name(release)} was lifted by {_escape(lifter)}: "
                f"{_escape(veto.lift_reason)}"
            )
        payload = _base(event, release, text)
        payload["veto"] = {
            "id": veto.pk,
            "role": veto.role,
            "by": veto.user.get_username(),
            "scope": veto.scope,
        }
        return payload, f"veto:{veto.pk}"
    if event == "attestation_revoked":
        return _revoked_payload(release)
    if event == "review_requested":
        requester = _escape(release.requester.get_username())
        text = f"{_name(release)} needs review (requested by {requester})"
    elif event == "promoted":
        text = f"{_name(release)} was promoted"
    else:
        text = f"{_name(release)}: {event}"
    return _base(event, release, text), event


def _revoked_payload(release: Release) -> tuple[dict[str, Any], str]:
    # The newest revocation act of the release: one act revokes all its attestations at once.
    latest = Revocation.objects.filter(attestation__release_id=release.pk).order_by("-id").first()
    cause = latest.cause if latest is not None else ""
    reason = latest.reason if latest is not None else ""
    text = (
        f"The signed clearance of {_name(release)} was revoked ({_escape(cause)}): "
        f"{_escape(reason)}; deploy targets checking it now refuse it"
    )
    payload = _base("attestation_revoked", release, text)
    payload["revocation"] = {"cause": cause, "reason": reason}
    key = f"attestation_revoked:{latest.pk}" if latest is not None else "attestation_revoked"
    return payload, key


def cleared_payload(*, release: Release, decision: GateDecision) -> dict[str, Any]:
    payload = _base("cleared", release, f"{_name(release)} is cleared for promotion")
    payload["policy_version"] = decision.policy_version
    return payload
