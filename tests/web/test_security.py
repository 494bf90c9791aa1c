"""Sign-in, lockout, headers and CSRF on the pages."""

import pytest
from django.test import Client

from releasegate.web.lockout import MAX_FAILURES
from releasegate.web.models import SignInFailure

pytestmark = pytest.mark.django_db


def _sign_in(client: Client, username: str, password: str):
    return client.post("/login/", {"username": username, "password": password})


def test_sign_in_with_the_right_password_lands_on_home(client, personas):
    response = _sign_in(client, "requester", "requester-password-123")
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_wrong_password_is_refused_and_counted(client, personas):
    response = _sign_in(client, "requester", "wrong")
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()
    assert SignInFailure.objects.filter(username="requester").count() == 1


def test_five_failures_lock_out_even_the_right_password(client, personas):
    for _ in range(MAX_FAILURES):
        _sign_in(client, "requester", "wrong")
    response = _sign_in(client, "requester", "requester-password-123")
    assert response.status_code == 200
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Refused attempts are not counted, so the lockout ends on time.
    assert SignInFailure.objects.filter(username="requester").count() == MAX_FAILURES


def test_lockout_is_per_username_and_address(client, personas):
    for _ in range(MAX_FAILURES):
        _sign_in(client, "requester", "wrong")
    other_address = Client(REMOTE_ADDR="10.0.0.9")
    assert _sign_in(other_address, "requester", "requester-password-123").status_code == 302
    assert _sign_in(client, "security", "security-password-123").status_code == 302


def test_failures_older_than_the_window_do_not_lock(client, personas):
    from datetime import timedelta

    from django.utils import timezone

    long_ago = timezone.now() - timedelta(minutes=20)
    SignInFailure.objects.bulk_create(
        [
            SignInFailure(username="requester", ip="127.0.0.1", at=long_ago)
            for _ in range(MAX_FAILURES)
        ]
    )
    assert _sign_in(client, "requester", "requester-password-123").status_code == 302


def test_success_clears_earlier_failures(client, personas):
    _sign_in(client, "requester", "wrong")
    _sign_in(client, "requester", "requester-password-123")
    assert not SignInFailure.objects.filter(username="requester").exists()


def test_pages_send_a_strict_content_security_policy_and_no_framing(client, personas):
    response = client.get("/login/")
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_pages_have_no_inline_script(client, personas):
    from tests.builders import submitted_release

    release = submitted_release(personas.project, personas.requester)
    client.force_login(personas.security)
    body = client.get(f"/releases/{release.pk}/").content.decode()
    assert "<script>" not in body and "onclick" not in body
    assert '<script src="/static/web/site.js" defer></script>' in body


def test_anonymous_visitors_are_sent_to_sign_in(client, personas):
    for url in ["/", "/releases/", "/releases/1/", "/tokens/", "/projects/support-assistant/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next=")


def test_a_post_without_csrf_token_is_refused(personas):
    from tests.builders import submitted_release

    release = submitted_release(personas.project, personas.requester)
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.security)
    response = client.post(f"/releases/{release.pk}/veto/", {"role": "security", "reason": "x"})
    assert response.status_code == 403
    release.refresh_from_db()
    assert not release.vetoes.exists()


def test_sign_out_is_a_post(client, personas):
    client.force_login(personas.requester)
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_only_the_api_docs_go_without_the_content_security_policy(client, personas):
    assert "Content-Security-Policy" not in client.get("/api/v1/docs")
    client.force_login(personas.requester)
    for url in ("/", "/releases/", "/tokens/", "/projects/"):
        assert "script-src 'self'" in client.get(url)["Content-Security-Policy"], url


def test_the_lock_lasts_fifteen_minutes_from_the_last_failure(client, personas):
    from datetime import timedelta

    from django.utils import timezone

    from releasegate.web.lockout import WINDOW

    now = timezone.now()
    # five failures, the last one 14 minutes ago: still locked
    SignInFailure.objects.bulk_create(
        [
            SignInFailure(username="requester", ip="127.0.0.1", at=now - timedelta(minutes=14 + i))
            for i in range(MAX_FAILURES)
        ]
    )
    response = _sign_in(client, "requester", "requester-password-123")
    assert "Try again in 1 minute." in response.content.decode()
    # the same five, moved back past the window: unlocked
    SignInFailure.objects.update(at=now - WINDOW - timedelta(seconds=1))
    assert _sign_in(client, "requester", "requester-password-123").status_code == 302
