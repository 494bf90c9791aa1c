"""Every write to holds and break-glass. Each act is audited and told after commit.

Locks follow the order of releasegate/transactions.py: the project, then release rows (by id),
then their holds and break-glass rows, then the audit head (last, inside `audit_record`).
"""

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from releasegate.accounts.actors import Actor, Capability
from releasegate.accounts.roles import Role
from releasegate.attestations.services import attestations_revoke
from releasegate.audit.services import audit_record
from releasegate.errors import Conflict, NotPermitted
from releasegate.incidents.alertmanager import Alert, read_notification
from releasegate.incidents.models import BreakGlass, Hold
from releasegate.notifications.incidents import NO_SIGNAL, break_glass_text, hold_text
from releasegate.notifications.people import holders_tell
from releasegate.releases.models import Evidence, EvidenceKind, Project, Release
from releasegate.releases.signals import send_after_commit
from releasegate.transactions import LockRank, lock_many, lock_one, lock_project, service
from releasegate.validation import MAX_TEXT, required_text

CONFIRM_WINDOW = timedelta(minutes=30)
MAX_INCIDENT = 200
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


# Who may do what (pages and API ask these; the services raise on their "no") ----------------


def may_lift_hold(actor: Actor, release: Release) -> str | None:
    """Why the actor may not lift a hold on the release; None when they may."""
    person = actor.person
    if person is None or Role.SECURITY not in actor.roles(release.project):
        return "Only a security holder of the project may lift a hold."
    if person.pk == release.requester_id:
        return "The requester may not lift a hold on their own release."
    return None


def may_request_break_glass(actor: Actor, release: Release) -> str | None:
    person = actor.person
    if person is None:
        return "Only a person may break the glass; a service token never does."
    if person.pk != release.requester_id and not actor.can(
        release.project, Capability.CHANGE_POLICY
    ):
        return "Only the release's requester or a project admin may break the glass."
    return None


def _security_but_no_requester(
    actor: Actor, bg: BreakGlass, release: Release, *, act: str, verb: str
) -> str | None:
    # The second person of a break-glass: a security holder who asked for neither.
    person = actor.person
    if person is None or Role.SECURITY not in actor.roles(release.project):
        return f"Only a security holder of the project may {act}."
    if person.pk in {bg.requested_by_id, release.requester_id}:
        return f"The requester of the release or of the break-glass may not {verb} it."
    return None


def may_confirm_break_glass(actor: Actor, bg: BreakGlass, release: Release) -> str | None:
    return _security_but_no_requester(
        actor, bg, release, act="confirm a break-glass", verb="confirm"
    )


def may_review_break_glass(actor: Actor, bg: BreakGlass, release: Release) -> str | None:
    return _security_but_no_requester(
        actor, bg, release, act="file the post-incident review", verb="review"
    )


def _allowed(answer: str | None, code: str) -> None:
    if answer is not None:
        raise NotPermitted(answer, code=code)


def _record_and_tell(
    *,
    event: str,
    actor: Actor,
    project: Project,
    release: Release,
    incident_id: int,
    text: str,
    data: dict[str, Any],
) -> None:
    """How every hold and break-glass act ends: audited (the last lock), its notification
    targets told through the outbox, and the project's role holders e-mailed after commit."""
    audit_record(action=event, actor=actor, project_id=project.pk, release_id=release.pk, data=data)
    send_after_commit(event, release_id=release.pk, incident_id=incident_id)
    holders_tell(project=project, release=release, event=event, text=text)


# Alerts and holds -----------------------------------------------------------------------------


@dataclass
class AlertIntake:
    """What one notification did: `holds` (placed, noted or already there), `unmatched`."""

    holds: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)


def _normal(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _plan_signal(release: Release, alert: Alert) -> str:
    """The monitoring plan's signal the alert is about: named by its `signal` label, or by its
    alert name (compared without case, spaces or punctuation: ToxicOutputRate is "toxic output
    rate"); "" when the plan names none."""
    plan = (
        Evidence.objects.filter(
            release_id=release.pk, kind=EvidenceKind.MONITORING_PLAN, is_current=True
        )
        .values_list("document", flat=True)
        .first()
    )
    signals = plan.get("signals", []) if isinstance(plan, dict) else []
    names = [s["name"] for s in signals if isinstance(s, dict) and isinstance(s.get("name"), str)]
    for wanted in (alert.labels.get("signal", ""), alert.name):
        for name in names:
            if wanted and _normal(name) == _normal(wanted):
                return name
    return ""


def _alert_ref(alert: Alert) -> dict[str, Any]:
    return {"fingerprint": alert.fingerprint, "alert": alert.name, "status": alert.status}


def _matching_releases(project: Project, alert: Alert) -> tuple[list[Release], str]:
    """The promoted releases of the project the alert's labels name, or why none."""
    labels = alert.labels
    promoted = Release.objects.filter(project=project, state=Release.State.PROMOTED)
    environment = labels.get("environment")
    digest = labels.get("releasegate_digest")
    version = labels.get("releasegate_version")
    if digest is not None:
        if not DIGEST_RE.match(digest):
            return [], "label releasegate_digest is not sha256:<64 lower-case hex>"
        found = promoted.filter(artifact_digest=digest)
        if environment is not None:
            found = found.filter(environment=environment)
    elif version is not None and environment is not None:
        found = promoted.filter(version=version, environment=environment)
    else:
        return [], (
            "no label names a release (releasegate_digest, or releasegate_version with environment)"
        )
    releases = list(found.order_by("id"))
    if not releases:
        return [], f"no promoted release of {project.slug} matches the alert's labels"
    return releases, ""


def _hold_dict(hold: Hold, release: Release, outcome: str) -> dict[str, Any]:
    return {
        "hold_id": hold.pk,
        "release_id": release.pk,
        "version": release.version,
        "environment": release.environment,
        "fingerprint": hold.fingerprint,
        "alert": hold.alert_name,
        "severity": hold.severity,
        "signal": hold.signal or NO_SIGNAL,
        "since": hold.since.isoformat().replace("+00:00", "Z"),
        "alert_status": hold.alert_status,
        "outcome": outcome,
    }


def _existing_hold(
    release: Release, alert: Alert, active: dict[tuple[int, str], Hold]
) -> Hold | None:
    """The hold this alert is about: the active one of its fingerprint, or the lifted one of this
    very firing (its fingerprint and start)."""
    return active.get((release.pk, alert.fingerprint)) or (
        Hold.objects.filter(
            release=release, fingerprint=alert.fingerprint, since=alert.starts_at
        ).first()
    )


def _note_alert_status(
    hold: Hold, status: str, *, resolved_at: datetime | None, actor: Actor, action: str
) -> None:
    """Note on a hold what its alert does now (resolved, firing again); the hold stays."""
    hold.alert_status = status
    hold.resolved_at = resolved_at
    hold.save(update_fields=["alert_status", "resolved_at"])
    audit_record(
        action=action,
        actor=actor,
        project_id=hold.project_id,
        release_id=hold.release_id,
        data={"hold_id": hold.pk, "fingerprint": hold.fingerprint},
    )


def _place_or_note(
    *,
    project: Project,
    release: Release,
    alert: Alert,
    actor: Actor,
    intake: AlertIntake,
    active: dict[tuple[int, str], Hold],
) -> None:
    """Place, note or leave the hold for one alert on one (locked) release; `active` holds the
    locked active holds and gains the ones placed."""
    existing = _existing_hold(release, alert, active)
    if alert.status == Hold.AlertStatus.RESOLVED:
        if existing is None or existing.lifted_at is not None:
            intake.unmatched.append(
                {**_alert_ref(alert), "reason": "resolved, and no active hold to note it on"}
            )
            return
        if existing.alert_status != Hold.AlertStatus.RESOLVED:
            _note_alert_status(
                existing,
                Hold.AlertStatus.RESOLVED,
                resolved_at=alert.ends_at or timezone.now(),
                actor=actor,
                action="hold_alert_resolved",
            )
            intake.holds.append(_hold_dict(existing, release, "resolved_noted"))
        else:
            intake.holds.append(_hold_dict(existing, release, "unchanged"))
        return
    if existing is not None:
        if existing.lifted_at is not None:
            # The alert a security holder already lifted, sent again (repeat_interval): it
            # does not hold again; a new firing of it (a new startsAt) does.
            intake.holds.append(_hold_dict(existing, release, "lifted_already"))
        elif existing.alert_status == Hold.AlertStatus.RESOLVED:
            _note_alert_status(
                existing,
                Hold.AlertStatus.FIRING,
                resolved_at=None,
                actor=actor,
                action="hold_alert_firing_again",
            )
            intake.holds.append(_hold_dict(existing, release, "firing_again"))
        else:
            intake.holds.append(_hold_dict(existing, release, "unchanged"))
        return
    hold = Hold.objects.create(
        project_id=release.project_id,
        release=release,
        fingerprint=alert.fingerprint,
        alert_name=alert.name[:200],
        summary=(alert.annotations.get("summary") or alert.annotations.get("description", ""))[
            :MAX_TEXT
        ],
        severity=alert.labels.get("severity", "")[:64],
        signal=_plan_signal(release, alert)[:200],
        labels=alert.labels,
        annotations=alert.annotations,
        generator_url=alert.generator_url[:1000],
        since=alert.starts_at,
    )
    active[(release.pk, hold.fingerprint)] = hold
    _record_and_tell(
        event="hold_placed",
        actor=actor,
        project=project,
        release=release,
        incident_id=hold.pk,
        text=hold_text(hold, "hold_placed"),
        data={
            "hold_id": hold.pk,
            "alert": hold.alert_name,
            "fingerprint": hold.fingerprint,
            "severity": hold.severity,
            "signal": hold.signal or None,
            "since": hold.since,
            "summary": hold.summary,
        },
    )
    intake.holds.append(_hold_dict(hold, release, "placed"))


@service
def alerts_receive(*, project: Project, actor: Actor, body: Any) -> AlertIntake:
    """Read one Alertmanager notification (version 4) and hold the promoted releases its firing
    alerts name, at a severity the project's policy holds on. Resolved alerts are noted on their
    holds, never lift them. Nothing changes when nothing matches."""
    if not actor.can(project, Capability.REPORT_ALERT):
        raise NotPermitted("Only a service token with alerts:write may report alerts.")
    notification = read_notification(body)
    policy = project.current_policy
    assert policy is not None
    held_on = set(policy.hold_severities)
    intake = AlertIntake()
    wanted: list[tuple[Alert, list[Release]]] = []
    for alert in notification.alerts:
        releases, why = _matching_releases(project, alert)
        severity = alert.labels.get("severity")
        if not releases:
            intake.unmatched.append({**_alert_ref(alert), "reason": why})
        elif alert.status == "firing" and severity not in held_on:
            intake.unmatched.append(
                {
                    **_alert_ref(alert),
                    "reason": f"severity {severity or '(none)'} is not one this project holds on "
                    f"({', '.join(sorted(held_on)) or 'none'})",
                }
            )
        else:
            wanted.append((alert, releases))
    if not wanted:
        return intake
    lock_project(project.pk)
    ids = sorted({r.pk for _, found in wanted for r in found})
    locked = {r.pk: r for r in lock_many(Release.objects.filter(pk__in=ids), LockRank.RELEASE)}
    # Every row lock before the first audit record (the audit head is the last lock of an act).
    fingerprints = sorted({alert.fingerprint for alert, _ in wanted})
    active = {
        (h.release_id, h.fingerprint): h
        for h in lock_many(
            Hold.objects.filter(
                release_id__in=ids, fingerprint__in=fingerprints, lifted_at__isnull=True
            ),
            LockRank.RELEASE_ROWS,
        )
    }
    to_hold = {
        (release.pk, alert.fingerprint): alert
        for alert, releases in wanted
        if alert.status == Hold.AlertStatus.FIRING
        for release in releases
        if _existing_hold(release, alert, active) is None
    }
    for (release_id, fingerprint), alert in sorted(to_hold.items()):
        # A hold revokes the release's signed clearance: its attestations stop verifying. Before
        # the holds' audit records, since attestation rows are locked below the audit head.
        attestations_revoke(
            release_ids=[release_id],
            reason=f"held by the production alert {alert.name}"[:500],
            cause=f"hold:{fingerprint}"[:64],
            actor=actor,
        )
    for alert, releases in wanted:
        for release in releases:
            _place_or_note(
                project=project,
                release=locked[release.pk],
                alert=alert,
                actor=actor,
                intake=intake,
                active=active,
            )
    return intake


@service
def hold_lift(*, hold: Hold, actor: Actor, reason: Any) -> Hold:
    """Lift a hold: a security holder of the project, not the release's requester, with a
    reason. A resolved alert never does this by itself."""
    release = Release.objects.select_related("project").get(pk=hold.release_id)
    _allowed(may_lift_hold(actor, release), "not_a_holder")
    text = required_text(reason)
    lock_one(Release.objects.only("id"), LockRank.RELEASE, pk=release.pk)
    locked = lock_one(Hold.objects.all(), LockRank.RELEASE_ROWS, pk=hold.pk)
    if locked.lifted_at is not None:
        raise Conflict("The hold was lifted already.", code="already_lifted")
    locked.lifted_at = timezone.now()
    locked.lifted_by = actor.person
    locked.lift_reason = text
    locked.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    _record_and_tell(
        event="hold_lifted",
        actor=actor,
        project=release.project,
        release=release,
        incident_id=locked.pk,
        text=hold_text(locked, "hold_lifted"),
        data={"hold_id": locked.pk, "alert": locked.alert_name, "reason": text},
    )
    return locked


# Break-glass ------------------------------------------------------------------------------------


def break_glass_state(bg: BreakGlass, now: datetime) -> str:
    """pending (awaiting confirmation), lapsed (not confirmed in time), active, ended."""
    if bg.confirmed_at is None:
        return "pending" if now < bg.confirm_by else "lapsed"
    assert bg.until is not None
    return "active" if now < bg.until else "ended"


def review_overdue(bg: BreakGlass, now: datetime) -> bool:
    return bg.review_due is not None and bg.reviewed_at is None and bg.review_due <= now


def _lock_release(release: Release) -> Release:
    lock_project(release.project_id)
    return lock_one(
        Release.objects.select_related("project", "project__current_policy"),
        LockRank.RELEASE,
        pk=release.pk,
    )


@service
def break_glass_request(
    *, release: Release, actor: Actor, reason: Any, incident: Any, now: datetime | None = None
) -> BreakGlass:
    """Open a break-glass on a release in review: the requester or a project admin. It does
    nothing until a security holder other than them confirms it within 30 minutes."""
    _allowed(may_request_break_glass(actor, release), "not_permitted")
    text = required_text(reason)
    ticket = required_text(incident, "incident", limit=MAX_INCIDENT)
    now = now or timezone.now()
    locked = _lock_release(release)
    if locked.state != Release.State.IN_REVIEW:
        raise Conflict(
            f"Only a release in review can break the glass; this one is {locked.state}.",
            code="invalid_state",
        )
    for open_one in BreakGlass.objects.filter(release=locked, reviewed_at__isnull=True):
        if break_glass_state(open_one, now) in {"pending", "active"}:
            raise Conflict(
                f"Break-glass {open_one.pk} on this release is "
                f"{break_glass_state(open_one, now)} already.",
                code="break_glass_open",
            )
    person = actor.person
    assert person is not None
    bg = BreakGlass.objects.create(
        project_id=locked.project_id,
        release=locked,
        reason=text,
        incident=ticket,
        requested_by=person,
        requested_at=now,
        confirm_by=now + CONFIRM_WINDOW,
    )
    _record_and_tell(
        event="break_glass_requested",
        actor=actor,
        project=locked.project,
        release=locked,
        incident_id=bg.pk,
        text=break_glass_text(bg, "break_glass_requested"),
        data={
            "break_glass_id": bg.pk,
            "reason": text,
            "incident": ticket,
            "confirm_by": bg.confirm_by,
        },
    )
    return bg


@service
def break_glass_confirm(
    *, break_glass: BreakGlass, actor: Actor, reason: Any, now: datetime | None = None
) -> BreakGlass:
    """Put a break-glass in force for the policy's `break_glass_hours`: a security holder who is
    neither the release's requester nor the one who opened it, within 30 minutes of the request.
    Its post-incident review falls due `break_glass_review_days` after."""
    release = Release.objects.select_related("project").get(pk=break_glass.release_id)
    _allowed(may_confirm_break_glass(actor, break_glass, release), "not_permitted")
    text = required_text(reason)
    now = now or timezone.now()
    locked_release = _lock_release(release)
    bg = lock_one(BreakGlass.objects.all(), LockRank.RELEASE_ROWS, pk=break_glass.pk)
    state = break_glass_state(bg, now)
    if state == "lapsed":
        raise Conflict(
            "The request was not confirmed within 30 minutes; open a new one.",
            code="break_glass_lapsed",
        )
    if state != "pending":
        raise Conflict("The break-glass was confirmed already.", code="already_confirmed")
    if locked_release.state != Release.State.IN_REVIEW:
        raise Conflict(f"The release is {locked_release.state}.", code="invalid_state")
    policy = locked_release.project.current_policy
    assert policy is not None
    bg.confirmed_by = actor.person
    bg.confirmed_at = now
    bg.confirm_reason = text
    bg.until = now + timedelta(hours=policy.break_glass_hours)
    bg.review_due = now + timedelta(days=policy.break_glass_review_days)
    bg.save(update_fields=["confirmed_by", "confirmed_at", "confirm_reason", "until", "review_due"])
    _record_and_tell(
        event="break_glass_confirmed",
        actor=actor,
        project=locked_release.project,
        release=locked_release,
        incident_id=bg.pk,
        text=break_glass_text(bg, "break_glass_confirmed"),
        data={
            "break_glass_id": bg.pk,
            "reason": text,
            "until": bg.until,
            "review_due": bg.review_due,
            "policy_version": policy.version,
        },
    )
    return bg


@service
def break_glass_review(
    *, break_glass: BreakGlass, actor: Actor, summary: Any, now: datetime | None = None
) -> BreakGlass:
    """File the post-incident review of a confirmed break-glass: a security holder other than
    the requesters. Until it is filed past its due date, no release of the project is cleared."""
    release = Release.objects.select_related("project").get(pk=break_glass.release_id)
    _allowed(may_review_break_glass(actor, break_glass, release), "not_permitted")
    text = required_text(summary, "summary")
    now = now or timezone.now()
    _lock_release(release)
    bg = lock_one(BreakGlass.objects.all(), LockRank.RELEASE_ROWS, pk=break_glass.pk)
    if bg.confirmed_at is None:
        raise Conflict("Only a confirmed break-glass is reviewed.", code="not_confirmed")
    if bg.reviewed_at is not None:
        raise Conflict("The review was filed already.", code="already_reviewed")
    bg.reviewed_by = actor.person
    bg.reviewed_at = now
    bg.review_summary = text
    bg.save(update_fields=["reviewed_by", "reviewed_at", "review_summary"])
    _record_and_tell(
        event="break_glass_reviewed",
        actor=actor,
        project=release.project,
        release=release,
        incident_id=bg.pk,
        text=break_glass_text(bg, "break_glass_reviewed"),
        data={
            "break_glass_id": bg.pk,
            "summary": text,
            "was_overdue": bool(bg.review_due and bg.review_due <= now),
        },
    )
    return bg
