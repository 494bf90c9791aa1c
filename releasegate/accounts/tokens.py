"""API tokens: issue, revoke and authenticate bearer tokens for people and pipelines.

A token reads `<prefix><key id>_<secret>`: `rgp_` for a personal token, `rgs_` for a service
token, so a leaked one is recognisable to secret scanners. The key id finds the row; only a
SHA-256 of the secret is stored (the secret is 256 random bits, so a slow hash buys nothing) and it
is compared in constant time. Every token expires; tokens work on the API only, never on pages.
"""

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from releasegate.accounts.actors import Actor, Capability, Scope
from releasegate.accounts.models import ApiToken
from releasegate.audit.services import audit_record
from releasegate.errors import FieldError, InvalidInput, NotPermitted, ReleasegateError
from releasegate.transactions import LockRank, lock_one, service

PREFIXES = {ApiToken.Kind.PERSONAL: "rgp_", ApiToken.Kind.SERVICE: "rgs_"}
KEY_ID_BYTES = 6  # 12 hex characters, well within ApiToken.key_id
MAX_EXPIRY = timedelta(days=365)
MIN_EXPIRY = timedelta(minutes=5)
DEFAULT_EXPIRY = timedelta(days=90)
# Recording every use would turn each gate query into a write; once a minute is enough to audit.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_TOKEN_RE = re.compile(r"^(rgp|rgs)_([0-9a-f]{12})_([A-Za-z0-9_\-]{20,100})$")
# Hashed when the key id is unknown, so an unknown id costs the same work as a wrong secret.
_DUMMY_HASH = hashlib.sha256(b"releasegate-no-such-token").hexdigest()


class TokenRejected(ReleasegateError):
    """The bearer token is missing its parts, unknown, forged, expired or revoked; 401."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message=message, code=code, status=401)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _scopes(kind: str, scopes: Sequence[str]) -> list[str]:
    if isinstance(scopes, str) or not all(isinstance(s, str) for s in scopes):
        raise InvalidInput(
            "Invalid scopes.", errors=[FieldError("scopes", "a list of scope names")]
        )
    if kind == ApiToken.Kind.PERSONAL:
        if scopes:
            raise InvalidInput(
                "A personal token acts as its user and takes no scopes.",
                errors=[FieldError("scopes", "must be empty for a personal token")],
            )
        return []
    unknown = [s for s in scopes if s not in Scope._value2member_map_]
    if unknown or not scopes:
        raise InvalidInput(
            "A service token needs at least one known scope.",
            errors=[FieldError("scopes", f"one or more of {', '.join(s.value for s in Scope)}")],
        )
    return sorted(set(scopes))


def _may_create(actor: Actor, kind: str, user: Any, project: Any) -> None:
    if actor.token is not None:
        raise NotPermitted("A token cannot issue tokens.", code="token_cannot_issue")
    if actor.system:
        return
    if kind == ApiToken.Kind.PERSONAL:
        person = actor.person
        if person is None or person.pk != user.pk:
            raise NotPermitted("A personal token is issued only to yourself.")
        return
    if not actor.can(project, Capability.MANAGE_SERVICE_TOKENS):
        raise NotPermitted("Only a project admin may issue service tokens for this project.")


@service
def token_create(
    *,
    actor: Actor,
    kind: str,
    name: str,
    user: Any = None,
    project: Any = None,
    scopes: Sequence[str] = (),
    expires_in: timedelta = DEFAULT_EXPIRY,
    owner: Any = None,
    oidc_policy: Any = None,
    oidc_claims: dict[str, Any] | None = None,
) -> tuple[ApiToken, str]:
    """Issue a token; returns the row and the plaintext token, which is never shown again.

    `owner` (service tokens only, default: the issuing person) is the person releases created
    through the token are requested in the name of, so that person can never approve them.
    `oidc_policy` marks a service token minted for an OIDC ID token; its audit event is then
    `token_minted_oidc` and names the policy and `oidc_claims`.
    """
    if kind not in ApiToken.Kind.values:
        raise InvalidInput(
            "Unknown token kind.", errors=[FieldError("kind", "personal or service")]
        )
    errors = []
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        errors.append(FieldError("name", "1 to 100 characters"))
    shortest = (
        timedelta(seconds=settings.RELEASEGATE_OIDC_MIN_LIFETIME_SECONDS)
        if oidc_policy is not None
        else MIN_EXPIRY
    )
    if not isinstance(expires_in, timedelta) or not shortest <= expires_in <= MAX_EXPIRY:
        errors.append(FieldError("expires_in", "between 5 minutes and 365 days"))
    if kind == ApiToken.Kind.PERSONAL and (
        user is None or project is not None or owner is not None
    ):
        errors.append(FieldError("user", "a personal token names its user and no project"))
    if kind == ApiToken.Kind.SERVICE and (project is None or user is not None):
        errors.append(FieldError("project", "a service token names its project and no user"))
    if oidc_policy is not None and (
        kind != ApiToken.Kind.SERVICE
        or oidc_policy.project_id != (project.pk if project is not None else None)
    ):
        errors.append(FieldError("oidc_policy", "a trust policy mints its own project's tokens"))
    if kind == ApiToken.Kind.PERSONAL and user is not None and not user.is_active:
        errors.append(FieldError("user", "the user is not active"))
    if errors:
        raise InvalidInput("The token is not valid.", errors=errors)
    clean_scopes = _scopes(kind, scopes)
    _may_create(actor, kind, user, project)
    if kind == ApiToken.Kind.PERSONAL:
        created_by = actor.person or user
    else:
        created_by = owner if owner is not None else actor.person
    key_id = secrets.token_hex(KEY_ID_BYTES)
    secret = secrets.token_urlsafe(32)
    now = timezone.now()
    token = ApiToken.objects.create(
        kind=kind,
        name=name.strip(),
        key_id=key_id,
        secret_hash=_hash(secret),
        user=user if kind == ApiToken.Kind.PERSONAL else None,
        project=project if kind == ApiToken.Kind.SERVICE else None,
        scopes=clean_scopes,
        created_by=created_by,
        created_at=now,
        expires_at=now + expires_in,
        oidc_policy=oidc_policy,
    )
    oidc = {"policy": oidc_policy.pk, "claims": oidc_claims or {}} if oidc_policy else {}
    audit_record(
        action="token_minted_oidc" if oidc_policy is not None else "token_created",
        actor=actor,
        project_id=token.project_id,
        data={
            **oidc,
            "kind": kind,
            "name": token.name,
            "key_id": key_id,
            "user": user.get_username() if token.user_id else None,
            "owner": created_by.get_username() if created_by is not None else None,
            "scopes": clean_scopes,
            "expires_at": token.expires_at,
        },
    )
    return token, f"{PREFIXES[ApiToken.Kind(kind)]}{key_id}_{secret}"


@service
def token_revoke(*, token: ApiToken, actor: Actor) -> ApiToken:
    """Revoke a token at once. Revoking a revoked token changes nothing."""
    if actor.token is not None:
        raise NotPermitted("A token cannot revoke tokens.", code="token_cannot_issue")
    if not actor.system:
        if token.kind == ApiToken.Kind.PERSONAL:
            person = actor.person
            if person is None or person.pk != token.user_id:
                raise NotPermitted("A personal token is revoked only by its user.")
        elif token.project is None or not actor.can(
            token.project, Capability.MANAGE_SERVICE_TOKENS
        ):
            raise NotPermitted("Only a project admin may revoke this project's service tokens.")
    locked = lock_one(ApiToken.objects.all(), LockRank.ACCOUNT, pk=token.pk)
    if locked.revoked_at is not None:
        return locked
    locked.revoked_at = timezone.now()
    locked.save(update_fields=["revoked_at"])
    audit_record(
        action="token_revoked",
        actor=actor,
        project_id=locked.project_id,
        data={"kind": locked.kind, "name": locked.name, "key_id": locked.key_id},
    )
    token.revoked_at = locked.revoked_at
    return locked


@dataclass(frozen=True)
class _Columns:
    """One model's columns in a hand-written SELECT: their attribute names, and the conversions
    the ORM would apply to each value (JSON text to Python values, and the like)."""

    attnames: list[str]
    converters: list[tuple[Any, list[Any]]]  # per column: the column and its converters

    @classmethod
    def of(cls, model: Any, alias: str) -> "_Columns":
        cols = [f.get_col(alias) for f in model._meta.concrete_fields]
        return cls(
            attnames=[col.target.attname for col in cols],
            converters=[
                (col, connection.ops.get_db_converters(col) + col.get_db_converters(connection))
                for col in cols
            ],
        )

    def instance(self, model: Any, values: Sequence[Any]) -> Any:
        converted = []
        for value, (col, converters) in zip(values, self.converters, strict=True):
            for convert in converters:
                value = convert(value, col, connection)
            converted.append(value)
        return model.from_db(connection.alias, self.attnames, converted)


@cache
def _token_lookup() -> tuple[str, _Columns, _Columns]:
    """The token by key id with its user (a personal token acts as its user), written out once
    from the models' columns: every API request runs it, and composing it through the ORM each
    time costs more than the round trip."""
    quote = connection.ops.quote_name
    user_model = get_user_model()
    token_fields, user_fields = ApiToken._meta.concrete_fields, user_model._meta.concrete_fields
    user_fk = ApiToken._meta.get_field("user").column
    key_id = ApiToken._meta.get_field("key_id").column
    columns = ", ".join(
        [f"t.{quote(str(f.column))}" for f in token_fields]
        + [f"u.{quote(str(f.column))}" for f in user_fields]
    )
    sql = (
        f"SELECT {columns} FROM {quote(ApiToken._meta.db_table)} t "  # noqa: S608
        f"LEFT JOIN {quote(user_model._meta.db_table)} u "
        f"ON u.{quote(str(user_model._meta.pk.column))} = t.{quote(str(user_fk))} "
        f"WHERE t.{quote(str(key_id))} = %s"
    )
    return sql, _Columns.of(ApiToken, "t"), _Columns.of(user_model, "u")


def token_parts(raw: str) -> tuple[str, str, str]:
    """The prefix, key id and secret of a well-formed token; TokenRejected otherwise (no query)."""
    match = _TOKEN_RE.match(raw or "")
    if match is None:
        raise TokenRejected("The token is malformed.", code="token_invalid")
    prefix, key_id, secret = match.groups()
    return prefix, key_id, secret


def _token_from_row(row: Sequence[Any]) -> ApiToken | None:
    """The token and its user read from `_token_lookup`'s columns."""
    _, token_columns, user_columns = _token_lookup()
    split = len(token_columns.attnames)
    if row[0] is None:
        return None
    token: ApiToken = token_columns.instance(ApiToken, row[:split])
    if token.user_id is not None:
        end = split + len(user_columns.attnames)
        token.user = user_columns.instance(get_user_model(), row[split:end])
    return token


def _token_with_user(key_id: str) -> ApiToken | None:
    sql, _, _ = _token_lookup()
    with connection.cursor() as cursor:
        cursor.execute(sql, [key_id])
        row = cursor.fetchone()
    return None if row is None else _token_from_row(row)


def token_checked(prefix: str, secret: str, token: ApiToken | None) -> ApiToken:
    """The token, if `secret` is its secret and it is active now; TokenRejected with a code saying
    why otherwise. Every path that authenticates a token decides here, so none can drift: the
    secret compared in constant time (against a dummy when the key id is unknown), the prefix
    matching the kind, then revoked, expired, and the user active. Records the last use at most
    once a minute (a write)."""
    expected = token.secret_hash if token is not None else _DUMMY_HASH
    if not hmac.compare_digest(_hash(secret), expected) or token is None:
        raise TokenRejected("The token is not valid.", code="token_invalid")
    if f"{prefix}_" != PREFIXES[ApiToken.Kind(token.kind)]:
        raise TokenRejected("The token is not valid.", code="token_invalid")
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenRejected("The token was revoked.", code="token_revoked")
    if token.expires_at <= now:
        raise TokenRejected("The token has expired.", code="token_expired")
    if token.user is not None and not token.user.is_active:
        raise TokenRejected("The token's user is not active.", code="token_user_inactive")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def token_verify(raw: str) -> ApiToken:
    """The active token `raw` names, or TokenRejected with a code saying why (one query, plus a
    write at most once a minute to record its last use)."""
    return token_verify_parts(*token_parts(raw))


def token_verify_parts(prefix: str, key_id: str, secret: str) -> ApiToken:
    """As `token_verify`, for a token already split by `token_parts`."""
    return token_checked(prefix, secret, _token_with_user(key_id))


def token_authenticate(raw: str) -> ApiToken | None:
    """The active token `raw` names, or None if it is malformed, forged, expired or revoked."""
    try:
        return token_verify(raw)
    except TokenRejected:
        return None
