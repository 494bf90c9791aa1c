"""Bearer tokens for the API (`Authorization: Bearer rgp_…` or `rgs_…`). Pages never accept them."""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db import connection
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from releasegate.accounts.models import ApiToken
from releasegate.accounts.tokens import TokenRejected, token_parts, token_verify


class ServicePrincipal:
    """Stands in for `request.user` when a service token calls: authenticated, but nobody."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, token: ApiToken):
        self.token = token

    def get_username(self) -> str:
        return f"token:{self.token.name}"

    def __str__(self) -> str:
        return self.get_username()


def principal_for(token: ApiToken) -> Any:
    """`request.user` for a verified token: its person, or a ServicePrincipal."""
    return token.user if token.kind == ApiToken.Kind.PERSONAL else ServicePrincipal(token)


def rejected(error: TokenRejected) -> exceptions.AuthenticationFailed:
    """The 401 a refused token is answered with, wherever it was refused."""
    return exceptions.AuthenticationFailed(error.message, code=error.code)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def bearer(self, request: Request) -> str | None:
        """The token after `Bearer `, or None when the request names no bearer token."""
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        return raw.strip()

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        raw = self.bearer(request)
        if raw is None:
            return None
        try:
            token = token_verify(raw)
        except TokenRejected as error:
            raise rejected(error) from None
        return principal_for(token), token

    def authenticate_header(self, request: Request) -> str:
        return self.challenge()

    @classmethod
    def challenge(cls) -> str:
        """The WWW-Authenticate value of a 401, the same whatever the request."""
        return f'{cls.keyword} realm="releasegate"'


@dataclass(frozen=True)
class DeferredBearer:
    """A well-formed bearer token not looked up yet: the gate views verify it (`token_checked`)
    in the statement that reads the gate's facts, before they use any of them."""

    prefix: str
    key_id: str
    secret: str


class GateBearerAuthentication(BearerTokenAuthentication):
    """The gate views' bearer authentication: a malformed token is refused here, as everywhere;
    a well-formed one is left to the view's single statement (PostgreSQL; elsewhere it is
    verified here as on every other view)."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        if connection.vendor != "postgresql":
            return super().authenticate(request)
        raw = self.bearer(request)
        if raw is None:
            return None
        try:
            prefix, key_id, secret = token_parts(raw)
        except TokenRejected as error:
            raise rejected(error) from None
        return AnonymousUser(), DeferredBearer(prefix, key_id, secret)
