"""Callers of the API: people by session or personal token, service tokens by scope, bad tokens."""

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from releasegate.accounts.actors import Actor, Scope
from releasegate.accounts.models import ApiToken
from releasegate.accounts.tokens import token_create, token_revoke
from tests.conftest import Personas

PEOPLE = ("requester", "security", "sme", "admin", "auditor", "outsider")


@dataclass
class Caller:
    name: str
    user: Any = None  # signs in with a session
    token: str | None = None  # sends Authorization: Bearer

    def request(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, **extra: Any
    ) -> Any:
        client = Client()
        if self.user is not None:
            client.force_login(self.user)
        if self.token is not None:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {self.token}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is None:
            return getattr(client, method.lower())(path, **extra)
        return getattr(client, method.lower())(
            path, data=data, content_type=extra.pop("content_type", "application/json"), **extra
        )


def personal_token(user: Any) -> str:
    _, raw = token_create(actor=Actor.for_user(user), kind="personal", name="t", user=user)
    return raw


def service_token(personas: Personas, *scopes: str, project: Any = None) -> tuple[ApiToken, str]:
    project = project or personas.project
    actor = Actor.system_actor() if project != personas.project else personas.actor("admin")
    return token_create(
        actor=actor,
        kind="service",
        name="ci",
        project=project,
        scopes=list(scopes),
        owner=personas.admin if project != personas.project else None,
    )


def callers(personas: Personas, other_project: Any) -> list[Caller]:
    found = [Caller(f"session:{name}", user=getattr(personas, name)) for name in PEOPLE]
    found += [
        Caller(f"token:{name}", token=personal_token(getattr(personas, name))) for name in PEOPLE
    ]
    for scope in Scope:
        found.append(
            Caller(f"service:{scope.value}", token=service_token(personas, scope.value)[1])
        )
    every = [s.value for s in Scope]
    found.append(
        Caller(
            "service:other-project", token=service_token(personas, *every, project=other_project)[1]
        )
    )
    expired, raw = service_token(personas, *every)
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    found.append(Caller("service:expired", token=raw))
    revoked, raw = service_token(personas, *every)
    token_revoke(token=revoked, actor=personas.actor("admin"))
    found.append(Caller("service:revoked", token=raw))
    valid, raw = service_token(personas, *every)
    found.append(Caller("service:forged", token=raw[:-8] + "forgedXX"))
    found.append(Caller("none"))
    return found


@pytest.fixture
def service(personas: Personas) -> Any:
    def make(*scopes: str) -> Caller:
        return Caller(
            "service", token=service_token(personas, *(scopes or [s.value for s in Scope]))[1]
        )

    return make


@pytest.fixture
def person(personas: Personas) -> Any:
    def make(name: str) -> Caller:
        return Caller(f"token:{name}", token=personal_token(getattr(personas, name)))

    return make
