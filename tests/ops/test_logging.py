"""Structured logs: one JSON object per line with the request id; no token, password or session
id ever reaches the output; the request id travels with the tasks a request enqueues."""

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery.signals import before_task_publish
from django.test import Client

from releasegate.celery import app as celery_app
from releasegate.notifications.tasks import sweep_notices
from releasegate.ops.context import current_request_id, request_id_var
from tests.conftest import Personas

TOKEN = "rgs_0123456789ab_S3cretS3cretS3cretS3cretS3cretS3cret0"


@contextmanager
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """The JSON lines written by the configured console handler (settings.LOGGING), parsed."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        if previous is not None:
            handler.setStream(previous)
        raw = stream.getvalue()
        lines.extend(json.loads(line) for line in raw.splitlines())
        lines.append({"_raw": raw})


def _request_line(lines: list[dict[str, Any]]) -> dict[str, Any]:
    return next(line for line in lines if line.get("logger") == "releasegate.request")


@pytest.mark.django_db
def test_a_request_carrying_a_token_logs_no_token(client: Client) -> None:
    with captured_logs() as lines:
        response = client.get(
            f"/api/v1/gate?token={TOKEN}&password=hunter2-hunter2",
            HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
            HTTP_COOKIE="sessionid=abcdefabcdefabcdefabcdef; csrftoken=zzzzzzzzzzzzzzzzzzzz",
            HTTP_X_REQUEST_ID="ci-run-4711-step-3",
        )
        logging.getLogger("releasegate.test").warning(
            "token %s rejected for password=%s", TOKEN, "hunter2-hunter2"
        )
    assert response.status_code == 401
    assert response["X-Request-ID"] == "ci-run-4711-step-3"
    raw = lines[-1]["_raw"]
    for secret in ("S3cretS3cret", "0123456789ab_", "hunter2", "abcdefabcdef", "zzzzzzzz"):
        assert secret not in raw
    request_line = _request_line(lines)
    assert request_line["method"] == "GET"
    assert request_line["path"] == "/api/v1/gate"
    assert request_line["status"] == 401
    assert request_line["request_id"] == "ci-run-4711-step-3"
    assert isinstance(request_line["duration_ms"], float)
    assert request_line["user_id"] is None
    assert {"time", "level", "logger", "message"} <= set(request_line)
    mine = next(line for line in lines if line.get("logger") == "releasegate.test")
    assert "[redacted]" in mine["message"]


def test_exceptions_and_webhook_urls_are_scrubbed_too() -> None:
    slack = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"
    with captured_logs() as lines:
        try:
            raise ValueError(f"bad header Authorization: Bearer {TOKEN}")
        except ValueError:
            logging.getLogger("releasegate.test").exception("failed posting to %s", slack)
    assert "ValueError" in lines[0]["exception"]
    assert lines[0]["message"] == "failed posting to https://hooks.slack.com/[redacted]"
    assert "S3cret" not in lines[-1]["_raw"]
    assert "XXXXXXXX" not in lines[-1]["_raw"]


@pytest.mark.django_db
def test_a_signed_in_request_logs_the_user_id(client: Client, personas: Personas) -> None:
    client.force_login(personas.sme)
    with captured_logs() as lines:
        response = client.get("/api/v1/releases", HTTP_X_REQUEST_ID="bad id with spaces!")
    assert response.status_code == 200
    request_line = _request_line(lines)
    assert request_line["user_id"] == personas.sme.pk
    # an unsafe caller id is replaced by a generated one, echoed back
    assert response["X-Request-ID"] == request_line["request_id"]
    assert " " not in response["X-Request-ID"] and len(response["X-Request-ID"]) == 32


def test_the_request_id_is_published_with_every_task() -> None:
    published: list[dict[str, Any]] = []

    def capture(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
        published.append(dict(headers or {}))

    before_task_publish.connect(capture, weak=False)
    token = request_id_var.set("req-from-the-web-1234")
    try:
        with celery_app.connection_for_write("memory://") as connection:
            sweep_notices.apply_async(connection=connection)
    finally:
        request_id_var.reset(token)
        before_task_publish.disconnect(capture)
    assert published and published[-1]["request_id"] == "req-from-the-web-1234"


@pytest.mark.django_db
def test_a_task_runs_under_the_request_id_it_was_sent_with(personas: Personas) -> None:
    from celery import shared_task

    seen: list[str | None] = []

    @shared_task(name="tests.ops.record_request_id")
    def record_request_id() -> None:
        seen.append(current_request_id())

    record_request_id.apply(headers={"request_id": "req-abc-12345678"})
    assert seen == ["req-abc-12345678"]
    assert current_request_id() is None


def test_a_malformed_log_call_never_breaks_the_caller() -> None:
    with captured_logs() as lines:
        logging.getLogger("releasegate.test").warning("%s and %s", f"only one: {TOKEN}")
    assert lines[0]["message"] == "%s and %s"
    assert "S3cret" not in lines[-1]["_raw"]
