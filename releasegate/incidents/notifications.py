"""What a hold or break-glass notification says (see releasegate.ops.notifications)."""

from typing import Any

from releasegate.incidents.models import BreakGlass, Hold
from releasegate.incidents.services import NO_SIGNAL


def _iso(moment: Any) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


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
        if event == "hold_placed":
            text = (
                f"held by the production alert {hold.alert_name} ({hold.severity}, signal: "
                f"{hold.signal or NO_SIGNAL}): {hold.summary}"
            )
        else:
            lifter = hold.lifted_by.get_username() if hold.lifted_by else "someone"
            text = f"the hold by {hold.alert_name} was lifted by {lifter}: {hold.lift_reason}"
        return text, fields, f"hold:{hold.pk}"
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
    if event == "break_glass_requested":
        text = (
            f"{bg.requested_by.get_username()} asks to break the glass ({bg.incident}): "
            f"{bg.reason}. A security holder must confirm by {_iso(bg.confirm_by)}."
        )
    elif event == "break_glass_confirmed":
        confirmer = bg.confirmed_by.get_username() if bg.confirmed_by else "someone"
        text = (
            f"break-glass ({bg.incident}) confirmed by {confirmer}, in force until "
            f"{_iso(bg.until)}; the post-incident review is due {_iso(bg.review_due)}"
        )
    else:
        reviewer = bg.reviewed_by.get_username() if bg.reviewed_by else "someone"
        text = f"the post-incident review of break-glass ({bg.incident}) was filed by {reviewer}"
    return text, fields, f"{event}:{bg.pk}"
