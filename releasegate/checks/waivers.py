"""Waivers: a security holder accepts the risk of one advisory for one project, for a while.

A waived advisory does not fail the `vulnerabilities` check while the waiver lasts. Creating or
revoking a waiver sets that project's `vulnerabilities` results of releases in review back to
pending, so the next run (enqueued after commit, or the next sweep) applies it.
"""

import json
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from releasegate.accounts.actors import Actor, Capability
from releasegate.audit.services import audit_record
from releasegate.checks.invalidation import check_results_invalidate
from releasegate.checks.models import Advisory, Waiver
from releasegate.errors import Conflict, FieldError, InvalidInput, NotFound, NotPermitted
from releasegate.releases.models import Project
from releasegate.releases.permissions import may_waive_advisory
from releasegate.transactions import LockRank, lock_one, service
from releasegate.validation import required_text, text_problem

MAX_WAIVER_DAYS = 365
MAX_WAIVER_REASON = 2000


def _authorize(actor: Actor, project: Project) -> None:
    if not actor.can(project, Capability.READ):
        raise NotFound("No such project.")
    if not actor.can(project, Capability.WAIVE_ADVISORY):
        raise NotPermitted("Only a holder of the project's security role may waive advisories.")


@service
def advisory_waive(
    *,
    project: Project,
    actor: Actor,
    advisory_id: Any,
    reason: Any,
    expires_at: Any,
) -> Waiver:
    """Waive one imported advisory (by its OSV id or an alias) for one project until `expires_at`
    (in the future, at most a year away). Only a holder of the project's security role may, and
    not for an advisory that affects a release they requested (`may_waive_advisory`)."""
    _authorize(actor, project)
    errors: list[FieldError] = []
    problem = text_problem(reason, limit=MAX_WAIVER_REASON)
    if problem is not None:
        errors.append(FieldError("reason", problem))
    text = reason.strip() if problem is None else ""
    advisory = None
    if not isinstance(advisory_id, str) or not advisory_id.strip() or len(advisory_id) > 100:
        errors.append(FieldError("advisory_id", "an advisory id such as PYSEC-2023-74 or a CVE"))
    else:
        wanted = advisory_id.strip()
        # A text match on the JSON list works on SQLite and PostgreSQL alike (SQLite has no JSON
        # `contains`); membership is then checked exactly.
        candidates = Advisory.objects.filter(
            Q(osv_id=wanted) | Q(aliases__icontains=json.dumps(wanted))
        ).order_by("osv_id")
        advisory = next((a for a in candidates if a.osv_id == wanted or wanted in a.aliases), None)
        if advisory is None:
            errors.append(FieldError("advisory_id", f"no imported advisory is known as {wanted!r}"))
    now = timezone.now()
    if not isinstance(expires_at, datetime) or timezone.is_naive(expires_at):
        errors.append(FieldError("expires_at", "a date and time with a time zone"))
    elif expires_at <= now:
        errors.append(FieldError("expires_at", "must be in the future"))
    elif expires_at > now + timedelta(days=MAX_WAIVER_DAYS):
        errors.append(FieldError("expires_at", f"at most {MAX_WAIVER_DAYS} days from now"))
    if errors:
        raise InvalidInput("The waiver is not valid.", code="invalid_waiver", errors=errors)
    person: Any = actor.person  # a security role is only ever held by a person
    assert advisory is not None and person is not None
    if not may_waive_advisory(actor, project, advisory.osv_id):
        raise NotPermitted(
            f"{advisory.osv_id} affects a release you requested: another security holder must "
            "decide whether to accept its risk.",
            code="requester_cannot_waive",
        )
    waiver = Waiver.objects.create(
        project=project,
        advisory_id=advisory.osv_id,
        reason=text,
        expires_at=expires_at,
        created_by=person,
        created_at=now,
    )
    audit_record(
        action="advisory_waived",
        actor=actor,
        project_id=project.pk,
        data={
            "waiver": waiver.pk,
            "advisory_id": advisory.osv_id,
            "requested_as": advisory_id.strip(),
            "reason": text,
            "expires_at": expires_at.isoformat(),
        },
    )
    check_results_invalidate(project_id=project.pk, check="vulnerabilities")
    return waiver


@service
def waiver_revoke(*, waiver: Waiver, actor: Actor, reason: Any) -> Waiver:
    """End a waiver before it expires, with a written reason; the advisory fails the check again."""
    _authorize(actor, waiver.project)
    text = required_text(reason, limit=MAX_WAIVER_REASON)
    locked = lock_one(Waiver.objects.all(), LockRank.RELEASE_ROWS, pk=waiver.pk)
    if not locked.is_active():
        raise Conflict("This waiver has already been revoked or has expired.", code="waiver_ended")
    person: Any = actor.person
    assert person is not None
    locked.revoked_at = timezone.now()
    locked.revoked_by = person
    locked.revoke_reason = text
    locked.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
    audit_record(
        action="waiver_revoked",
        actor=actor,
        project_id=locked.project_id,
        data={"waiver": locked.pk, "advisory_id": locked.advisory_id, "reason": text},
    )
    check_results_invalidate(project_id=locked.project_id, check="vulnerabilities")
    waiver.revoked_at, waiver.revoked_by, waiver.revoke_reason = (
        locked.revoked_at,
        locked.revoked_by,
        locked.revoke_reason,
    )
    return waiver
