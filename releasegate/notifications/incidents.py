"""What a hold or break-glass notification says (see notifications.payloads); its role holders
are told in person too (notifications.people.holders_tell)."""

from typing import Any

from releasegate.incidents.models import BreakGlass, Hold

NO_SIGNAL = "no signal of the plan"

HEADLINES = {
    "hold_placed": "held by a production alert",
    "hold_lifted": "a hold was lifted",
    "break_glass_requested": "break-glass requested",
    "break_glass_confirmed": "break-glass in force",
    "break_glass_reviewed": "break-glass reviewed",
}


def _iso(moment: Any) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def hold_text(hold: Hold, event: str) -> str:
    """The sentence for hold_placed or hold_lifted (reads `lifted_by`: load it with the hold)."""
    if event == "hold_placed":
        return (
            f"held by the production alert {hold.alert_name} ({hold.severity}, signal: "
            f"{hold.signal or NO_SIGNAL}): {hold.summary}"
        )
    lifter = hold.lifted_by.get_username() if hold.lifted_by else "someone"
    return f"the hold by {hold.alert_name} was lifted by {lifter}: {hold.lift_reason}"


def break_glass_text(bg: BreakGlass, event: str) -> str:
    """The sentence for one break-glass step (reads the people of the step: load them with it)."""
    if event == "break_glass_requested":
        return (
            f"{bg.requested_by.get_username()} asks to break the glass ({bg.incident}): "
            f"{bg.reason}. A security holder must confirm by {_iso(bg.confirm_by)}."
        )
    if event == "break_glass_confirmed":
        confirmer = bg.confirmed_by.get_username() if bg.confirmed_by else "someone"
        return (
            f"break-glass ({bg.incident}) confirmed by {confirmer}, in force until "
            f"{_iso(bg.until)}; the post-incident review is due {_iso(bg.review_due)}"
        )
    reviewer = bg.reviewed_by.get_username() if bg.reviewed_by else "someone"
    return f"the post-incident review of break-glass ({bg.incident}) was filed by {reviewer}"


def incident_text(*, event: str, incident_id: int) -> tuple[str, dict[str, Any], str]:
    """The sentence, the structured fields and the dedupe key of one hold or break-glass event."""
    if event in {"hold_placed", "hold_lifted"}:
        hold = Hold.objects.select_related("lifted_by").get(pk=incident_id)
        fields = {
            "hold": {
                "id": hold.pk,
                "alert": hold.alert_name,
                "severity": hold.severity,
                "signal": hold.signal or None,
                "since": _iso(hold.since),
            }
        }
        return hold_text(hold, event), fields, f"hold:{hold.pk}"
    bg = BreakGlass.objects.select_related("requested_by", "confirmed_by", "reviewed_by").get(
        pk=incident_id
    )
    fields = {
        "break_glass": {
            "id": bg.pk,
            "incident": bg.incident,
            "requested_by": bg.requested_by.get_username(),
            "confirmed_by": bg.confirmed_by.get_username() if bg.confirmed_by else None,
            "until": _iso(bg.until),
            "review_due": _iso(bg.review_due),
        }
    }
    return break_glass_text(bg, event), fields, f"{event}:{bg.pk}"
