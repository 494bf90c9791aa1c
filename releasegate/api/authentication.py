"""Bearer tokens for the API (`Authorization: Bearer rgp_…` or `rgs_…`). Pages never accept them."""

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from releasegate.accounts.models import ApiToken
from releasegate.accounts.tokens import TokenRejected, token_verify


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


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        try:
            token = token_verify(raw.strip())
        except TokenRejected as rejected:
            raise exceptions.AuthenticationFailed(rejected.message, code=rejected.code) from None
        user = token.user if token.kind == ApiToken.Kind.PERSONAL else ServicePrincipal(token)
        return user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="releasegate"'
