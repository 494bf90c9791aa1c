"""The OpenID Connect client for people's sign-in (authlib): authorization code with PKCE
(S256), `state` and `nonce` kept in the session, the ID token checked against the issuer's keys,
and RP-initiated logout at the issuer's `end_session_endpoint` when it has one.

The client is built from the settings when first asked for, so no request reaches the identity
provider at start-up; its discovery document is then fetched once per process.
"""

from functools import cache
from typing import Any

from authlib.integrations.django_client import DjangoOAuth2App, OAuth
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from releasegate.identity.backends import local_login_enabled
from releasegate.identity.issuers import url_problem

TIMEOUT_SECONDS = 10


def sso_enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


def sign_in_options() -> dict[str, Any]:
    """What the sign-in page offers: passwords, single sign-on, or both."""
    return {"local_login": local_login_enabled(), "sso_enabled": sso_enabled()}


@cache
def _client(issuer: str, client_id: str, client_secret: str, scopes: str) -> DjangoOAuth2App:
    problem = url_problem(issuer)
    if problem is not None:
        raise ImproperlyConfigured(f"OIDC_ISSUER {problem}")
    registry = OAuth()
    app: DjangoOAuth2App = registry.register(
        "releasegate",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": scopes,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
            "default_timeout": TIMEOUT_SECONDS,
        },
    )
    return app


def client() -> DjangoOAuth2App:
    return _client(
        settings.OIDC_ISSUER,
        settings.OIDC_CLIENT_ID,
        settings.OIDC_CLIENT_SECRET,
        settings.OIDC_SCOPES,
    )


def metadata() -> dict[str, Any]:
    found: dict[str, Any] = client().load_server_metadata()
    return found
