from collections.abc import Iterator
from typing import Any

import pytest

from releasegate.identity.issuers import forget_keys
from releasegate.identity.services import trust_policy_add
from tests.identity.issuer import LocalIssuer

GITHUB_PIN = {"repository_id": "111111"}


@pytest.fixture
def issuer(settings: Any) -> Iterator[LocalIssuer]:
    local = LocalIssuer()
    settings.RELEASEGATE_OIDC_ISSUERS = [local.url]
    settings.RELEASEGATE_OIDC_ALLOW_LOOPBACK_HTTP = True
    settings.RELEASEGATE_OIDC_TIMEOUT_SECONDS = 1
    forget_keys()
    yield local
    forget_keys()
    local.close()


@pytest.fixture
def add_policy(personas: Any, issuer: LocalIssuer) -> Any:
    def add(**overrides: Any) -> Any:
        fields: dict[str, Any] = {
            "project": personas.project,
            "actor": personas.actor("admin"),
            "issuer": issuer.url,
            "audience": "releasegate",
            "claims": dict(GITHUB_PIN),
            "scopes": ["gate:read", "releases:write"],
        }
        fields.update(overrides)
        return trust_policy_add(**fields)

    return add


@pytest.fixture(autouse=True)
def plain_static(settings: Any) -> None:
    """Pages link CSS through {% static %}; the tests collect no manifest (see tests/web)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
