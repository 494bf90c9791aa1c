"""`manage.py notification_target`: an admin adds, lists and removes targets from the shell."""

import io

import pytest
from django.core.management import CommandError, call_command

from releasegate.audit.models import AuditEvent
from releasegate.notifications.models import NotificationTarget
from tests.conftest import Personas


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("notification_target", *args, stdout=out)
    return out.getvalue()


def test_an_admin_adds_lists_and_removes_a_webhook_from_the_shell(personas: Personas) -> None:
    output = run(
        "add",
        "--project",
        "support-assistant",
        "--as",
        "admin",
        "--kind",
        "webhook",
        "--url",
        "https://hooks.example.com/rg",
        "--events",
        "veto_cast,promoted",
    )
    target = NotificationTarget.objects.get()
    secret = output.strip().splitlines()[-1]
    assert secret == target.secret
    listing = run("list", "--project", "support-assistant")
    assert "https://hooks.example.com/… (sha256:" in listing and "veto_cast,promoted" in listing
    assert "/rg" not in listing
    assert secret not in listing
    run("remove", "--id", str(target.pk), "--as", "admin")
    assert run("list", "--project", "support-assistant") == ""
    assert AuditEvent.objects.filter(action__startswith="notification_target_").count() == 2


def test_the_shell_refuses_a_non_admin_and_bad_input(personas: Personas) -> None:
    with pytest.raises(CommandError, match="Only a project admin"):
        run(
            "add",
            "--project",
            "support-assistant",
            "--as",
            "requester",
            "--kind",
            "email",
            "--address",
            "a@example.com",
            "--events",
            "promoted",
        )
    with pytest.raises(CommandError, match="events"):
        run(
            "add",
            "--project",
            "support-assistant",
            "--as",
            "admin",
            "--kind",
            "email",
            "--address",
            "a@example.com",
            "--events",
            "nonsense",
        )
    assert not NotificationTarget.objects.exists()
