"""Notification targets (add, remove), the outbox (notices) and deliveries (create, attempt,
give up).

An act that some target wants to hear about writes a notice in its own transaction
(`notices_record`); a worker expands it into one delivery per subscribed target (`notice_expand`).
A delivery's network call never runs inside a transaction: an attempt is claimed with a short
conditional update, sent, then its outcome recorded with another.
"""

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db.models import Subquery
from django.utils import timezone

from releasegate.accounts.actors import Actor, Capability
from releasegate.audit.services import audit_record
from releasegate.errors import Conflict, FieldError, InvalidInput, NotPermitted
from releasegate.notifications.models import (
    NOTIFICATION_EVENTS,
    Delivery,
    Notice,
    NotificationTarget,
)
from releasegate.notifications.payloads import cleared_payload, event_payload
from releasegate.releases.gate import evaluate_gate
from releasegate.releases.models import Project, Release
from releasegate.releases.selectors import gate_release_queryset, load_gate_facts
from releasegate.transactions import LockRank, lock_project, note_lock, service

SIGNATURE_HEADER = "X-Releasegate-Signature"
TIMESTAMP_HEADER = "X-Releasegate-Timestamp"
MAX_TARGETS_PER_PROJECT = 20


def _require_manager(actor: Actor, project: Project) -> None:
    # Webhook secrets are integration credentials, managed by whoever manages service tokens.
    if not actor.can(project, Capability.MANAGE_SERVICE_TOKENS):
        raise NotPermitted("Only a project admin may manage its notifications.")


def _events(value: Any) -> list[str]:
    if (
        not isinstance(value, list | tuple)
        or not value
        or any(not isinstance(e, str) or e not in NOTIFICATION_EVENTS for e in value)
    ):
        raise InvalidInput(
            "Invalid events.",
            errors=[FieldError("events", f"a non-empty list of {', '.join(NOTIFICATION_EVENTS)}")],
        )
    return sorted(set(value), key=NOTIFICATION_EVENTS.index)


def _webhook_url(value: Any) -> str:
    parsed = urlparse(value) if isinstance(value, str) else None
    if (
        parsed is None
        or parsed.scheme not in {"http", "https"}
        or not parsed.hostname
        or len(value) > 500
    ):
        raise InvalidInput("Invalid webhook URL.", errors=[FieldError("url", "an http(s) URL")])
    if parsed.scheme != "https" and not settings.RELEASEGATE_WEBHOOK_ALLOW_HTTP:
        raise InvalidInput(
            "Webhooks must use HTTPS.", errors=[FieldError("url", "must start with https://")]
        )
    if parsed.username or parsed.password:
        raise InvalidInput(
            "Invalid webhook URL.", errors=[FieldError("url", "must not contain credentials")]
        )
    return value


def redacted_destination(target: NotificationTarget) -> str:
    """What the audit trail and the shell show of a target. A webhook URL's path is often its
    credential (Slack's are), so only scheme and host are shown, with a fingerprint of the whole."""
    if target.kind == NotificationTarget.Kind.EMAIL:
        return target.address
    parsed = urlparse(target.url)
    fingerprint = hashlib.sha256(target.url.encode()).hexdigest()[:12]
    return f"{parsed.scheme}://{parsed.netloc}/… (sha256:{fingerprint})"


def _address(value: Any) -> str:
    try:
        validate_email(value)
    except ValidationError:
        raise InvalidInput(
            "Invalid e-mail address.", errors=[FieldError("address", "an e-mail address")]
        ) from None
    return str(value)


@service
def notification_target_add(
    *,
    project: Project,
    actor: Actor,
    kind: Any,
    events: Any,
    url: Any = "",
    address: Any = "",
) -> tuple[NotificationTarget, str]:
    """Add a target; returns it and, for a webhook, its signing secret (shown this once only)."""
    _require_manager(actor, project)
    if kind not in NotificationTarget.Kind.values:
        raise InvalidInput(
            "Unknown target kind.",
            errors=[
                FieldError("kind", f"must be one of {', '.join(NotificationTarget.Kind.values)}")
            ],
        )
    chosen = _events(events)
    secret = ""
    if kind == NotificationTarget.Kind.WEBHOOK:
        url, address, secret = _webhook_url(url), "", secrets.token_urlsafe(32)
    else:
        url, address = "", _address(address)
    lock_project(project.pk)
    live = NotificationTarget.objects.filter(project=project, removed_at__isnull=True)
    if live.count() >= MAX_TARGETS_PER_PROJECT:
        raise Conflict(
            f"A project has at most {MAX_TARGETS_PER_PROJECT} notification targets.",
            code="too_many",
        )
    if live.filter(kind=kind, url=url, address=address).exists():
        raise Conflict("This target exists already.", code="duplicate_target")
    target = NotificationTarget.objects.create(
        project=project,
        kind=kind,
        url=url,
        address=address,
        secret=secret,
        events=chosen,
        created_by_id=actor.person.pk if actor.person is not None else None,
    )
    audit_record(
        action="notification_target_added",
        actor=actor,
        project_id=project.pk,
        data={
            "target_id": target.pk,
            "kind": kind,
            "destination": redacted_destination(target),
            "events": chosen,
        },
    )
    return target, secret


@service
def notification_target_remove(*, target: NotificationTarget, actor: Actor) -> NotificationTarget:
    _require_manager(actor, target.project)
    updated = NotificationTarget.objects.filter(pk=target.pk, removed_at__isnull=True).update(
        removed_at=timezone.now()
    )
    if not updated:
        raise Conflict("The target was removed already.", code="already_removed")
    target.refresh_from_db()
    audit_record(
        action="notification_target_removed",
        actor=actor,
        project_id=target.project_id,
        data={
            "target_id": target.pk,
            "kind": target.kind,
            "destination": redacted_destination(target),
        },
    )
    return target


def targets_for(project_id: int, event: str) -> list[NotificationTarget]:
    return [
        t
        for t in NotificationTarget.objects.filter(project_id=project_id, removed_at__isnull=True)
        if event in t.events
    ]


def notices_record(
    *, release_id: int, events: list[str], veto_id: int | None, incident_id: int | None = None
) -> list[Notice]:
    """Write, in the caller's transaction, one notice per event some live target of the
    release's project subscribes to; one query when nobody listens (no row)."""
    project_id = Release.objects.filter(pk=release_id).values("project_id")
    subscribed = {
        event
        for chosen in NotificationTarget.objects.filter(
            project_id=Subquery(project_id), removed_at__isnull=True
        ).values_list("events", flat=True)
        for event in chosen
    }
    return Notice.objects.bulk_create(
        Notice(release_id=release_id, event=event, veto_id=veto_id, incident_id=incident_id)
        for event in events
        if event in subscribed
    )


def _notice_deliveries(notice: Notice) -> list[Delivery]:
    release = gate_release_queryset().select_related("requester").get(pk=notice.release_id)
    targets = targets_for(release.project_id, notice.event)
    if not targets:
        return []
    if notice.event != "cleared":
        payload, dedupe_key = event_payload(
            event=notice.event,
            release=release,
            veto_id=notice.veto_id,
            incident_id=notice.incident_id,
        )
    else:
        # Evaluated here, in the worker, so the act that may have cleared it never pays for it.
        if release.state != Release.State.IN_REVIEW:
            return []
        decision = evaluate_gate(load_gate_facts(release), timezone.now())
        if not decision.cleared:
            return []
        payload = cleared_payload(release=release, decision=decision)
        dedupe_key = decision.manifest_digest
    return deliveries_create(
        targets=targets,
        event=notice.event,
        release=release,
        dedupe_key=dedupe_key,
        payload=payload,
    )


@service
def notice_expand(*, notice_id: int) -> list[Delivery]:
    """Turn one notice into its pending deliveries and mark it processed, in one transaction; a
    notice processed already (a duplicate message, a sweep) yields nothing. Should expanding fail,
    the notice stays unprocessed and the sweep takes it up again."""
    # Claimed by a conditional UPDATE (its row lock, at lock_one's rank, is held until commit): a
    # second worker on the same notice waits for this one, then finds it processed.
    note_lock(LockRank.RELEASE_ROWS, "notifications.Notice")
    claimed = Notice.objects.filter(pk=notice_id, processed_at__isnull=True).update(
        processed_at=timezone.now()
    )
    notice = Notice.objects.filter(pk=notice_id).first() if claimed else None
    if notice is None:
        return []
    return _notice_deliveries(notice)


def deliveries_create(
    *,
    targets: list[NotificationTarget],
    event: str,
    release: Release,
    dedupe_key: str,
    payload: dict[str, Any],
) -> list[Delivery]:
    """One pending delivery per target; an occurrence already recorded is not created again."""
    created = []
    for target in targets:
        delivery, is_new = Delivery.objects.get_or_create(
            target=target,
            event=event,
            release=release,
            dedupe_key=dedupe_key,
            defaults={"payload": payload},
        )
        if is_new:
            created.append(delivery)
    return created


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over "<timestamp>.<body>"; the receiver recomputes it."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


@dataclass(frozen=True)
class Attempt:
    delivery: Delivery | None  # None: nothing to do (delivered or given up already)
    delivered: bool = False
    # A failure that no retry can fix (a refused destination): given up at once.
    permanent: bool = False


class DestinationRefused(Exception):
    pass


def _check_destination(url: str) -> None:
    """Refuse webhooks into the service's own network (loopback, private, link-local such as a
    cloud metadata address), unless RELEASEGATE_WEBHOOK_ALLOW_PRIVATE says this deployment's
    receivers live there. Checked on every attempt, after DNS, since names can change."""
    if settings.RELEASEGATE_WEBHOOK_ALLOW_PRIVATE:
        return
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parsed.hostname, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpx.ConnectError(f"cannot resolve {parsed.hostname}: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            raise DestinationRefused(f"{parsed.hostname} resolves to a non-public address")


def _send_webhook(target: NotificationTarget, payload: dict[str, Any]) -> int:
    _check_destination(target.url)
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    response = httpx.post(
        target.url,
        content=body,
        headers={
            "Content-Type": "application/json",
            "User-Agent": "releasegate-webhook/1",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(target.secret, timestamp, body),
        },
        timeout=settings.RELEASEGATE_WEBHOOK_TIMEOUT,
        follow_redirects=False,
    )
    return response.status_code


def _send_email(target: NotificationTarget, payload: dict[str, Any]) -> None:
    send_mail(
        # A reason may span lines; a header may not.
        subject=f"[releasegate] {' '.join(payload['text'].split())[:150]}",
        message=payload["text"] + "\n\n" + json.dumps(payload, indent=2, sort_keys=True),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[target.address],
    )


def delivery_attempt(*, delivery_id: int) -> Attempt:
    """Make one attempt; the delivery stays pending after a failure so that it may be retried."""
    pending = Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.PENDING)
    seen = pending.values_list("attempts", flat=True).first()
    if seen is None:
        return Attempt(delivery=None)
    # Compare and set on the attempt count: of two workers holding the same delivery (a retry
    # and a sweep), one claims the attempt and the other does nothing.
    claimed = pending.filter(attempts=seen).update(
        attempts=seen + 1, last_attempt_at=timezone.now()
    )
    if not claimed:
        return Attempt(delivery=None)
    delivery = Delivery.objects.select_related("target").get(pk=delivery_id)
    target = delivery.target
    code: int | None = None
    error = ""
    permanent = False
    try:
        if target.removed_at is not None:
            raise DestinationRefused("the target was removed")
        if target.kind == NotificationTarget.Kind.WEBHOOK:
            code = _send_webhook(target, delivery.payload)
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        else:
            _send_email(target, delivery.payload)
    except DestinationRefused as exc:
        error, permanent = f"refused: {exc}"[:500], True
    except Exception as exc:  # any failure of this attempt is recorded, never left pending unseen
        # Only the exception's class and message: never the request, which carries the signature.
        error = f"{exc.__class__.__name__}: {exc}"[:500] or exc.__class__.__name__
    fields: dict[str, Any] = {"response_code": code, "last_error": error}
    if not error:
        fields.update(status=Delivery.Status.DELIVERED, delivered_at=timezone.now())
    Delivery.objects.filter(pk=delivery_id).update(**fields)
    delivery.refresh_from_db()
    return Attempt(delivery=delivery, delivered=not error, permanent=permanent)


def delivery_give_up(*, delivery_id: int) -> None:
    Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.FAILED
    )
