"""Notifications: webhooks (signed, retried, recorded) and e-mail, delivered by tasks after the
request has returned, configured per project by its admin."""

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from releasegate.audit.models import AuditEvent
from releasegate.celery import app as celery_app
from releasegate.errors import InvalidInput, NotPermitted
from releasegate.notifications.models import Delivery, Notice, NotificationTarget
from releasegate.notifications.services import (
    deliveries_create,
    notification_target_add,
    notification_target_remove,
)
from releasegate.notifications.tasks import notify_release_event, stale_after, sweep_deliveries
from releasegate.releases.services import veto_cast, veto_lift
from tests.builders import submitted_release
from tests.conftest import Personas
from tests.ops.test_logging import captured_logs
from tests.releases.gatehelpers import cleared_release


class Receiver:
    """A webhook receiver on a local port: records each request, answers `status`, and holds
    every answer until `release` is set when `hold` is on."""

    def __init__(self) -> None:
        self.status = 200
        self.hold = False
        self.release = threading.Event()
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.url = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append((dict(self.headers.items()), body))
            if state.hold:
                state.release.wait(timeout=5)
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/releasegate"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with override_settings(
            RELEASEGATE_WEBHOOK_ALLOW_HTTP=True, RELEASEGATE_WEBHOOK_ALLOW_PRIVATE=True
        ):
            yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    conf = celery_app.conf
    previous = conf.task_always_eager, conf.task_eager_propagates
    # Not propagating: an eager retry is re-applied by Celery only when it is not raised.
    conf.task_always_eager, conf.task_eager_propagates = True, False
    try:
        yield
    finally:
        conf.task_always_eager, conf.task_eager_propagates = previous


def webhook(p: Personas, url: str, *events: str) -> tuple[NotificationTarget, str]:
    return notification_target_add(
        project=p.project, actor=p.actor("admin"), kind="webhook", url=url, events=list(events)
    )


def test_webhook_body_is_slack_compatible_and_its_signature_verifies(
    personas: Personas, receiver: Receiver, eager_tasks: None, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    target, secret = webhook(personas, receiver.url, "veto_cast")
    release = submitted_release(personas.project, personas.requester)
    with django_capture_on_commit_callbacks(execute=True):
        veto_cast(
            release=release,
            actor=personas.actor("security"),
            role="security",
            reason="<!channel> model card is missing",
        )
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    timestamp = headers["X-Releasegate-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(headers["X-Releasegate-Signature"], f"sha256={expected}")
    wrong = hmac.new(b"another secret", f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-Releasegate-Signature"] != f"sha256={wrong}"
    payload = json.loads(body)
    assert payload["event"] == "veto_cast"
    assert payload["project"] == "support-assistant"
    assert payload["release"]["id"] == release.pk
    assert payload["veto"]["role"] == "security"
    # Slack-compatible: a `text`, in which a reason cannot ping a channel
    assert "vetoed by security (security)" in payload["text"]
    assert "&lt;!channel&gt;" in payload["text"] and "<!channel>" not in payload["text"]
    delivery = Delivery.objects.get(target=target)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None


def test_a_failing_receiver_is_retried_then_recorded_as_failed(
    personas: Personas, receiver: Receiver, eager_tasks: None, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    receiver.status = 500
    target, secret = webhook(personas, receiver.url, "review_requested")
    with (
        override_settings(RELEASEGATE_NOTIFY_MAX_ATTEMPTS=3),
        captured_logs() as lines,
        django_capture_on_commit_callbacks(execute=True),
    ):
        release = submitted_release(personas.project, personas.requester)
    attempts = 3
    assert len(receiver.requests) == attempts
    delivery = Delivery.objects.get(target=target)
    assert delivery.release_id == release.pk
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempts == attempts
    assert (delivery.response_code, delivery.last_error) == (500, "HTTP 500")
    assert any(line.get("message") == "notification failed for good" for line in lines)
    assert secret not in lines[-1]["_raw"]


def drain_enqueued_tasks() -> list[tuple[str, list[Any], dict[str, Any]]]:
    """Take every message off the test broker's default queue: (task name, args, kwargs)."""
    taken = []
    with celery_app.connection_for_read() as connection:
        queue = connection.SimpleQueue(celery_app.conf.task_default_queue)
        try:
            while True:
                try:
                    message = queue.get(block=False)
                except queue.Empty:
                    break
                args, kwargs, _ = message.decode()
                taken.append((message.headers["task"], args, kwargs))
                message.ack()
        finally:
            queue.close()
    return taken


def test_a_request_returns_without_waiting_on_a_slow_receiver(
    personas: Personas, receiver: Receiver, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    receiver.hold = True  # every answer waits 5 s (or until released)
    target, _ = webhook(personas, receiver.url, "veto_cast")
    release = submitted_release(personas.project, personas.requester)
    drain_enqueued_tasks()
    with django_capture_on_commit_callbacks(execute=True):
        started = time.monotonic()
        veto_cast(release=release, actor=personas.actor("security"), role="security", reason="no")
        took = time.monotonic() - started
    # The act and its after-commit work are done; the receiver has heard nothing yet.
    assert took < 2
    assert receiver.requests == []
    assert not Delivery.objects.exists()
    enqueued = drain_enqueued_tasks()
    assert [name for name, _, _ in enqueued] == ["releasegate.ops.tasks.notify_release_event"]
    # The worker's turn: run the enqueued task (eagerly, here) and let it deliver.
    receiver.release.set()
    conf = celery_app.conf
    conf.task_always_eager = True
    try:
        name, args, kwargs = enqueued[0]
        celery_app.tasks[name].apply(args=args, kwargs=kwargs)
    finally:
        conf.task_always_eager = False
    assert len(receiver.requests) == 1
    assert Delivery.objects.get(target=target).status == Delivery.Status.DELIVERED


def test_cleared_is_told_once_per_evidence_manifest(
    personas: Personas, receiver: Receiver, eager_tasks: None, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    webhook(personas, receiver.url, "cleared")
    with django_capture_on_commit_callbacks(execute=True):
        release = cleared_release(personas)
    assert [json.loads(body)["event"] for _, body in receiver.requests] == ["cleared"]
    # Another act on the same evidence (a later approval, a check recorded again) tells nobody.
    again = Notice.objects.create(release=release, event="cleared")
    notify_release_event.apply(args=[again.pk])
    assert len(receiver.requests) == 1
    delivery = Delivery.objects.get()
    assert delivery.dedupe_key == release.manifest_digest


def test_an_email_target_is_told_that_review_was_requested(
    personas: Personas, eager_tasks: None, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    notification_target_add(
        project=personas.project,
        actor=personas.actor("admin"),
        kind="email",
        address="release-board@example.com",
        events=["review_requested", "promoted"],
    )
    with django_capture_on_commit_callbacks(execute=True):
        release = submitted_release(personas.project, personas.requester, version="3.1.4")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["release-board@example.com"]
    assert "support-assistant 3.1.4 (production) needs review" in message.subject
    delivery = Delivery.objects.get(release=release)
    assert (delivery.event, delivery.status, delivery.attempts) == (
        "review_requested",
        "delivered",
        1,
    )


def test_only_a_project_admin_manages_targets_and_every_change_is_audited(
    personas: Personas,
) -> None:
    for name in ("requester", "security", "sme", "auditor", "outsider"):
        with pytest.raises(NotPermitted):
            notification_target_add(
                project=personas.project,
                actor=personas.actor(name),
                kind="email",
                address="x@example.com",
                events=["promoted"],
            )
    with override_settings(RELEASEGATE_WEBHOOK_ALLOW_HTTP=False):
        target, secret = notification_target_add(
            project=personas.project,
            actor=personas.actor("admin"),
            kind="webhook",
            url="https://hooks.example.com/releasegate",
            events=["promoted", "veto_cast"],
        )
    assert len(secret) >= 40
    added = AuditEvent.objects.get(action="notification_target_added")
    # The URL's path may be its credential: the audit trail keeps the host and a fingerprint.
    assert added.data["destination"].startswith("https://hooks.example.com/… (sha256:")
    assert "releasegate" not in added.data["destination"]
    assert secret not in json.dumps(added.data)
    with pytest.raises(NotPermitted):
        notification_target_remove(target=target, actor=personas.actor("requester"))
    notification_target_remove(target=target, actor=personas.actor("admin"))
    assert AuditEvent.objects.filter(action="notification_target_removed").count() == 1
    target.refresh_from_db()
    assert target.removed_at is not None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "webhook", "url": "http://hooks.example.com/x", "events": ["promoted"]}, "url"),
        ({"kind": "webhook", "url": "ftp://hooks.example.com/x", "events": ["promoted"]}, "url"),
        (
            {"kind": "webhook", "url": "https://u:p@hooks.example.com", "events": ["promoted"]},
            "url",
        ),
        ({"kind": "webhook", "url": "https://hooks.example.com", "events": ["approved"]}, "events"),
        ({"kind": "webhook", "url": "https://hooks.example.com", "events": []}, "events"),
        ({"kind": "email", "address": "not an address", "events": ["promoted"]}, "address"),
        ({"kind": "pager", "events": ["promoted"]}, "kind"),
    ],
)
def test_bad_target_input_names_the_field_and_stores_nothing(
    personas: Personas, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        notification_target_add(project=personas.project, actor=personas.actor("admin"), **fields)
    assert [e.field for e in refused.value.errors] == [field]
    assert not NotificationTarget.objects.exists()
    assert not AuditEvent.objects.filter(action="notification_target_added").exists()


def test_a_removed_target_is_told_nothing(
    personas: Personas, receiver: Receiver, eager_tasks: None, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    target, _ = webhook(personas, receiver.url, "review_requested")
    notification_target_remove(target=target, actor=personas.actor("admin"))
    with django_capture_on_commit_callbacks(execute=True):
        submitted_release(personas.project, personas.requester)
    assert receiver.requests == []
    assert not Delivery.objects.exists()


def test_a_webhook_into_the_private_network_is_refused_without_retrying(
    personas: Personas, receiver: Receiver, eager_tasks: None, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    target, _ = webhook(personas, receiver.url, "review_requested")
    with (
        override_settings(RELEASEGATE_WEBHOOK_ALLOW_PRIVATE=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        submitted_release(personas.project, personas.requester)
    assert receiver.requests == []
    delivery = Delivery.objects.get(target=target)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.last_error == "refused: 127.0.0.1 resolves to a non-public address"


def test_lifting_the_last_veto_tells_veto_lifted_then_cleared(
    personas: Personas, receiver: Receiver, eager_tasks: None, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    release = cleared_release(personas)
    veto = veto_cast(
        release=release, actor=personas.actor("security"), role="security", reason="wait"
    )
    webhook(personas, receiver.url, "veto_lifted", "cleared")
    with django_capture_on_commit_callbacks(execute=True):
        veto_lift(veto=veto, actor=personas.actor("security"), reason="fixed in 2.0.1 config")
    payloads = [json.loads(body) for _, body in receiver.requests]
    assert [p["event"] for p in payloads] == ["veto_lifted", "cleared"]
    assert "lifted by security: fixed in 2.0.1 config" in payloads[0]["text"]
    assert payloads[1]["text"] == "support-assistant 1.0.0 (production) is cleared for promotion"


def test_the_sweep_takes_up_deliveries_left_pending_and_leaves_fresh_ones(
    personas: Personas, receiver: Receiver, eager_tasks: None
) -> None:
    target, _ = webhook(personas, receiver.url, "promoted")
    release = submitted_release(personas.project, personas.requester)
    stuck, fresh = (
        deliveries_create(
            targets=[target],
            event="promoted",
            release=release,
            dedupe_key=key,
            payload={"text": key, "event": "promoted"},
        )[0]
        for key in ("stuck", "fresh")
    )
    # A worker died after claiming an attempt, long ago; another delivery was just created.
    long_ago = timezone.now() - stale_after() - timedelta(minutes=1)
    Delivery.objects.filter(pk=stuck.pk).update(attempts=1, last_attempt_at=long_ago)
    sweep_deliveries.apply()
    assert [json.loads(body)["text"] for _, body in receiver.requests] == ["stuck"]
    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert (stuck.status, stuck.attempts) == ("delivered", 2)
    assert (fresh.status, fresh.attempts) == ("pending", 0)


def test_an_e_mail_about_a_multi_line_veto_reason_is_still_sent(
    personas: Personas, eager_tasks: None, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    notification_target_add(
        project=personas.project,
        actor=personas.actor("admin"),
        kind="email",
        address="release-board@example.com",
        events=["veto_cast"],
    )
    release = submitted_release(personas.project, personas.requester)
    reason = "PII in logs.\nSee finding PR-7.\r\nBcc: attacker@example.com"
    with django_capture_on_commit_callbacks(execute=True):
        veto_cast(release=release, actor=personas.actor("security"), role="security", reason=reason)
    (message,) = mail.outbox
    assert "\n" not in message.subject and "\r" not in message.subject
    assert message.recipients() == ["release-board@example.com"]
    assert "See finding PR-7." in message.body
    assert Delivery.objects.get().status == Delivery.Status.DELIVERED
