"""/healthz answers without the database; /readyz is 503 naming what is down, 200 when all is up."""

import json
import socket

import pytest
from django.test import Client, override_settings

from tests.conftest import REDIS_URL
from tests.ops.conftest import base_env, run_python


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_healthz_answers_without_touching_the_database(client: Client) -> None:
    # No database mark: pytest-django makes any query here an error.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_readyz_is_503_naming_the_broker_when_it_is_down(client: Client) -> None:
    with override_settings(
        CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port()}/0", RELEASEGATE_READY_TIMEOUT=1
    ):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["broker"]
    assert body["checks"] == {"database": "ok", "broker": "down"}


@pytest.mark.redis
@pytest.mark.django_db
def test_readyz_is_200_when_database_and_broker_answer(client: Client) -> None:
    with override_settings(CELERY_BROKER_URL=REDIS_URL):
        response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


READYZ_IN_A_FRESH_PROCESS = """
import django, json
django.setup()
from django.test import Client
response = Client().get("/readyz")
print(json.dumps({"status": response.status_code, "body": response.json()}))
"""


def test_readyz_is_503_naming_the_database_when_it_is_down() -> None:
    env = base_env(
        DJANGO_SETTINGS_MODULE="releasegate.settings",
        DEBUG="false",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="testserver",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/releasegate",
        CELERY_BROKER_URL="memory://",
        LOG_LEVEL="CRITICAL",
    )
    result = run_python(READYZ_IN_A_FRESH_PROCESS, env)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == 503
    assert outcome["body"]["down"] == ["database"]
    assert outcome["body"]["checks"]["broker"] == "ok"
