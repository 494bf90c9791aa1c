"""The base of every API view: who acts, and which projects they may see.

Every query for releases goes through `visible_releases` / `release`, which a subclass may not
override (the class refuses to be defined), so no endpoint can forget to scope to the caller.
"""

from typing import Any, ClassVar, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import QuerySet
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from releasegate.accounts.actors import Actor
from releasegate.accounts.models import ApiToken
from releasegate.accounts.tokens import TokenRejected, token_verify_parts
from releasegate.api.authentication import (
    DeferredBearer,
    GateBearerAuthentication,
    principal_for,
    rejected,
)
from releasegate.api.errors import RequestTooLarge
from releasegate.api.parsers import BoundedJSONParser
from releasegate.errors import FieldError, InvalidInput, NotFound
from releasegate.jsonvalue import JSONObject
from releasegate.releases import selectors
from releasegate.releases.gate import GateDecision
from releasegate.releases.identifiers import MAX_ID
from releasegate.releases.models import Project, Release
from releasegate.releases.questions import GateQuestion


class HasActor(BasePermission):
    """A signed-in person or a valid token; what they may do is decided by the services."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        # A deferred token is verified by the gate view before it answers anything.
        if isinstance(request.auth, ApiToken | DeferredBearer):
            return True
        user = request.user
        return bool(user is not None and user.is_authenticated and user.is_active)


def actor_for(request: Request) -> Actor:
    if isinstance(request.auth, DeferredBearer):
        raise TypeError("A deferred bearer token is verified by `gate_decision` only.")
    if isinstance(request.auth, ApiToken):
        return Actor.for_token(request.auth)
    # HasActor let only a signed-in person through without a token.
    return Actor.for_user(cast(User, request.user))


# The gate views' authentication: a bearer token read in the gate's own statement.
GATE_AUTHENTICATION = [GateBearerAuthentication, SessionAuthentication]


class ScopedAPIView(APIView):
    permission_classes = [HasActor]
    parser_classes = [BoundedJSONParser]

    _SEALED: ClassVar[tuple[str, ...]] = (
        "actor",
        "visible_project_ids",
        "visible_releases",
        "release",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = [name for name in ScopedAPIView._SEALED if name in cls.__dict__]
        if overridden:
            raise TypeError(
                f"{cls.__name__} overrides {', '.join(overridden)}: API views must scope every "
                "query to the caller's visible projects through ScopedAPIView."
            )

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise RequestTooLarge()
        super().initial(request, *args, **kwargs)

    @property
    def actor(self) -> Actor:
        # Made once per request, kept on the request (which declares no attribute for it).
        cached = self.request.__dict__.get("_releasegate_actor")
        if isinstance(cached, Actor):
            return cached
        actor = actor_for(self.request)
        self.request.__dict__["_releasegate_actor"] = actor
        return actor

    def visible_project_ids(self) -> list[int]:
        return selectors.visible_project_ids(self.actor)

    def visible_releases(self) -> QuerySet[Release]:
        return selectors.gate_release_queryset().filter(project_id__in=self.visible_project_ids())

    def release(self, release_id: int) -> Release:
        if release_id > MAX_ID:
            raise NotFound("No such release.")
        return selectors.release_for(self.actor, release_id)

    def project(self, slug: str) -> Project:
        if len(slug) > 64 or "\x00" in slug:
            raise NotFound("No such project.")
        return selectors.project_for(self.actor, slug)

    def gate_decision(self, question: GateQuestion) -> GateDecision:
        """The gate's answer for the release the caller names among those it may see. A bearer
        token (`GateBearerAuthentication`) is verified in the same round trip as the facts are
        read; a 401 with the token's code when it is refused, a 404 when the release is not
        visible, exactly as on the reference path (`visible_gate_decision`)."""
        bearer = self.request.auth
        if not isinstance(bearer, DeferredBearer):
            return selectors.visible_gate_decision(self.actor, question)
        try:
            token, decision = selectors.bearer_gate_decision(
                bearer.prefix, bearer.key_id, bearer.secret, question
            )
        except TokenRejected as error:
            raise rejected(error) from None
        self._authenticated(token)
        if decision is None:
            raise NotFound("No such release.")
        return decision

    def _authenticated(self, token: ApiToken) -> None:
        self.request.user = principal_for(token)
        self.request.auth = token

    def handle_exception(self, exc: Exception) -> Response:
        # A request refused before its deferred token was verified (a bad query, say) is answered
        # as on every other endpoint: a refused token's 401 first.
        # `_auth`, not `auth`: reading `auth` would authenticate the request now, if it was
        # refused before it came to that (too large a body).
        bearer = getattr(getattr(self, "request", None), "_auth", None)
        if isinstance(bearer, DeferredBearer) and not isinstance(exc, AuthenticationFailed):
            try:
                self._authenticated(token_verify_parts(bearer.prefix, bearer.key_id, bearer.secret))
            except TokenRejected as error:
                exc = rejected(error)
        return super().handle_exception(exc)

    def body_object(self) -> JSONObject:
        """The JSON object the request sent; its fields go to the services as sent, which name
        the field that is wrong."""
        data = self.request.data
        if not isinstance(data, dict):
            raise InvalidInput(
                "The body must be a JSON object.",
                errors=[FieldError("(document)", "not an object")],
            )
        return data
