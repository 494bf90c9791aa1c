"""Writes of the identity area: trust policies and the OIDC exchange (CI), single sign-on and
IdP group mappings (people). Each is audited; role changes go through the role services."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from releasegate.accounts.actors import Actor, Capability, Scope
from releasegate.accounts.models import ApiToken
from releasegate.accounts.roles import Role
from releasegate.accounts.selectors import roles_for
from releasegate.accounts.tokens import token_create
from releasegate.audit.services import audit_record
from releasegate.errors import FieldError, InvalidInput, NotFound, NotPermitted, ReleasegateError
from releasegate.identity import issuers
from releasegate.identity.models import (
    ExternalIdentity,
    GroupMapping,
    IdpRoleGrant,
    SeenTokenId,
    TrustPolicy,
)
from releasegate.identity.trust import claims_match, clean_claims
from releasegate.releases.models import Project
from releasegate.releases.services import role_grant, role_revoke
from releasegate.transactions import LockRank, lock_one, service

MIN_LIFETIME = timedelta(minutes=5)  # the shortest token accounts.tokens issues
MAX_LIFETIME = timedelta(minutes=15)
DEFAULT_LIFETIME = timedelta(minutes=10)
LEEWAY_SECONDS = 60
MAX_ID_TOKEN_CHARS = 16 * 1024
# Claims the audit event keeps of an exchanged token: who ran what, where (GitHub, GitLab).
AUDITED_CLAIMS = (
    "iss",
    "sub",
    "jti",
    "repository",
    "repository_id",
    "repository_owner_id",
    "workflow",
    "workflow_ref",
    "job_workflow_ref",
    "run_id",
    "run_attempt",
    "ref",
    "environment",
    "actor",
    "project_path",
    "project_id",
    "namespace_id",
    "pipeline_id",
    "job_id",
)


# Who may -------------------------------------------------------------------------------------


def can_manage_trust(actor: Actor, project: Project) -> bool:
    """A project admin, in person: a token (even a personal one) never sets who may mint tokens."""
    return actor.token is None and actor.can(project, Capability.MANAGE_SERVICE_TOKENS)


def can_map_groups(actor: Actor, project: Project) -> bool:
    """A project admin, in person (the mapping grants roles in their name)."""
    return (
        actor.token is None
        and actor.person is not None
        and actor.can(project, Capability.MANAGE_ROLES)
    )


# Trust policies ------------------------------------------------------------------------------


def _clean_scopes(raw: Any) -> tuple[list[str], list[FieldError]]:
    known = [s.value for s in Scope]
    if isinstance(raw, str) or not isinstance(raw, list | tuple) or not raw:
        return [], [FieldError("scopes", f"one or more of {', '.join(known)}")]
    unknown = [s for s in raw if s not in known]
    if unknown:
        return [], [FieldError("scopes", f"unknown scope(s); one or more of {', '.join(known)}")]
    return sorted(set(raw)), []


@service
def trust_policy_add(
    *,
    project: Project,
    actor: Actor,
    issuer: Any,
    audience: Any,
    claims: Any,
    scopes: Any,
    lifetime: Any = DEFAULT_LIFETIME,
) -> TrustPolicy:
    """Trust ID tokens of `issuer` for `audience` whose claims match `claims` exactly; refused
    when the policy would trust more than one repository (see identity.trust)."""
    if not can_manage_trust(actor, project):
        raise NotPermitted("Only a project admin, signed in, may set its trust policies.")
    errors: list[FieldError] = []
    if not isinstance(issuer, str) or issuer not in issuers.allowed_issuers():
        errors.append(
            FieldError("issuer", "must be one of RELEASEGATE_OIDC_ISSUERS, written the same")
        )
    if not isinstance(audience, str) or not audience.strip() or len(audience) > 200:
        errors.append(FieldError("audience", "1 to 200 characters, the exact aud of the tokens"))
    elif audience != audience.strip() or not audience.isprintable():
        errors.append(FieldError("audience", "printable, without spaces around"))
    clean, claim_errors = clean_claims(claims)
    errors += claim_errors
    clean_scopes, scope_errors = _clean_scopes(scopes)
    errors += scope_errors
    if not isinstance(lifetime, timedelta) or not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
        errors.append(FieldError("lifetime", "between 5 and 15 minutes"))
    if errors:
        raise InvalidInput("The trust policy is not accepted.", errors=errors)
    policy = TrustPolicy.objects.create(
        project=project,
        issuer=issuer,
        audience=audience,
        claims=clean,
        scopes=clean_scopes,
        lifetime_seconds=int(lifetime.total_seconds()),
        created_by=actor.person,
    )
    audit_record(
        action="trust_policy_added",
        actor=actor,
        project_id=project.pk,
        data={
            "policy": policy.pk,
            "issuer": issuer,
            "audience": audience,
            "claims": clean,
            "scopes": clean_scopes,
            "lifetime_seconds": policy.lifetime_seconds,
        },
    )
    return policy


@service
def trust_policy_remove(*, policy: TrustPolicy, actor: Actor) -> TrustPolicy:
    """Stop trusting; tokens it minted stay valid until they expire (15 minutes at most) unless
    revoked. Removing a removed policy changes nothing."""
    if not can_manage_trust(actor, policy.project):
        raise NotPermitted("Only a project admin, signed in, may remove its trust policies.")
    locked = lock_one(TrustPolicy.objects.all(), LockRank.RELEASE_ROWS, pk=policy.pk)
    if locked.removed_at is not None:
        return locked
    locked.removed_at = timezone.now()
    locked.save(update_fields=["removed_at"])
    audit_record(
        action="trust_policy_removed",
        actor=actor,
        project_id=locked.project_id,
        data={"policy": locked.pk, "issuer": locked.issuer, "claims": locked.claims},
    )
    return locked


def parse_lifetime(text: str) -> timedelta:
    """`10m`, `900s` or `15m` as a timedelta; InvalidInput naming `lifetime` otherwise."""
    match = re.fullmatch(r"(\d{1,4})([sm]?)", text.strip())
    if match is None:
        raise InvalidInput("Invalid lifetime.", errors=[FieldError("lifetime", "e.g. 10m or 600s")])
    amount, unit = int(match.group(1)), match.group(2) or "s"
    return timedelta(minutes=amount) if unit == "m" else timedelta(seconds=amount)


# The exchange --------------------------------------------------------------------------------


class OidcRefused(ReleasegateError):
    """The ID token is not exchanged; 401 with a code saying why and nothing about projects."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message=message, code=code, status=401)


@dataclass(frozen=True)
class Minted:
    token: ApiToken
    plaintext: str
    policy: TrustPolicy
    scopes: list[str] = field(default_factory=list)


def _verified_claims(raw: str) -> dict[str, Any]:
    """The claims of `raw`, verified: an allowed issuer, its key, RS256/ES256, exp/nbf/iat."""
    try:
        header = jwt.get_unverified_header(raw)
        unverified = jwt.decode(raw, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise OidcRefused("The ID token is malformed.", code="oidc_invalid") from None
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or issuer not in issuers.allowed_issuers():
        raise OidcRefused(
            "The ID token's issuer is not trusted here.", code="oidc_untrusted_issuer"
        )
    algorithm, kid = header.get("alg"), header.get("kid")
    if algorithm not in issuers.ALLOWED_ALGORITHMS:
        raise OidcRefused("The ID token must be signed with RS256 or ES256.", code="oidc_invalid")
    if not isinstance(kid, str) or not kid:
        raise OidcRefused("The ID token names no signing key (kid).", code="oidc_invalid")
    try:
        key = issuers.signing_key(issuer, kid)
    except issuers.UnknownKey:
        raise OidcRefused(
            "The ID token is signed with a key its issuer does not publish.", code="oidc_invalid"
        ) from None
    if key.algorithm_name != algorithm:
        raise OidcRefused("The ID token's algorithm does not fit its key.", code="oidc_invalid")
    try:
        claims: dict[str, Any] = jwt.decode(
            raw,
            key.key,
            algorithms=[algorithm],
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "sub", "jti"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise OidcRefused("The ID token has expired.", code="oidc_expired") from None
    except jwt.PyJWTError as error:
        raise OidcRefused(f"The ID token is not valid ({error}).", code="oidc_invalid") from None
    if not isinstance(claims.get("jti"), str) or not claims["jti"] or len(claims["jti"]) > 200:
        raise OidcRefused("The ID token has no usable jti.", code="oidc_invalid")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise OidcRefused("The ID token has no subject.", code="oidc_invalid")
    return claims


def _audience(claims: Mapping[str, Any]) -> str | None:
    """`aud` as one exact string; a token meant for several audiences is meant for none here."""
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return aud if isinstance(aud, str) and aud else None


def _matching_policy(claims: Mapping[str, Any], project_slug: Any) -> TrustPolicy:
    audience = _audience(claims)
    candidates = TrustPolicy.objects.filter(
        issuer=claims["iss"], removed_at__isnull=True
    ).select_related("project", "created_by")
    if isinstance(project_slug, str) and project_slug:
        candidates = candidates.filter(project__slug=project_slug)
    policies = list(candidates)
    for_audience = [p for p in policies if audience is not None and p.audience == audience]
    if not for_audience:
        raise OidcRefused("No trust policy expects the ID token's audience.", code="oidc_audience")
    matching = [p for p in for_audience if claims_match(p.claims, claims)]
    if not matching:
        raise OidcRefused("No trust policy matches the ID token.", code="oidc_no_policy")
    if len({p.project_id for p in matching}) > 1:
        raise OidcRefused(
            "Trust policies of several projects match the ID token: name the project.",
            code="oidc_no_policy",
        )
    # Within one project the most specific policy wins (more claims pinned), then the oldest.
    return sorted(matching, key=lambda p: (-len(p.claims), p.pk))[0]


def _remember_jti(claims: Mapping[str, Any], now: datetime) -> None:
    expires_at = datetime.fromtimestamp(int(claims["exp"]) + LEEWAY_SECONDS, tz=UTC)
    SeenTokenId.objects.filter(expires_at__lt=now).delete()
    try:
        with transaction.atomic():
            SeenTokenId.objects.create(
                issuer=claims["iss"], jti=claims["jti"], expires_at=expires_at
            )
    except IntegrityError:
        raise OidcRefused("The ID token was exchanged before.", code="oidc_replayed") from None


def oidc_exchange(*, raw: Any, project_slug: Any = None) -> Minted:
    """Exchange an OIDC ID token for a service token of the project whose trust policy it
    matches, once per token (`jti`). Refusals are OidcRefused (401) or IssuerUnavailable (503)."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_ID_TOKEN_CHARS:
        raise InvalidInput(
            "The body needs the ID token.",
            errors=[FieldError("token", "the OIDC ID token, a JWT of at most 16 KiB")],
        )
    if project_slug is not None and not isinstance(project_slug, str):
        raise InvalidInput("Invalid project.", errors=[FieldError("project", "a project slug")])
    claims = _verified_claims(raw)
    policy = _matching_policy(claims, project_slug)
    return _mint(policy=policy, claims=claims)


@service
def _mint(*, policy: TrustPolicy, claims: Mapping[str, Any]) -> Minted:
    """Remember the jti and mint the token in one transaction: a refused mint forgets the jti,
    and of two racing exchanges of one token the second waits on the first's unique key."""
    _remember_jti(claims, timezone.now())
    token, plaintext = token_create(
        actor=Actor.system_actor(),
        kind=ApiToken.Kind.SERVICE,
        name=f"oidc policy {policy.pk}: {claims['sub']}"[:100],
        project=policy.project,
        scopes=policy.scopes,
        expires_in=timedelta(seconds=policy.lifetime_seconds),
        owner=policy.created_by,
        oidc_policy=policy,
        oidc_claims={name: claims[name] for name in AUDITED_CLAIMS if name in claims},
    )
    return Minted(token=token, plaintext=plaintext, policy=policy, scopes=list(token.scopes))


# Group mappings ------------------------------------------------------------------------------


def _role_value(raw: Any) -> str:
    if raw not in {r.value for r in Role}:
        raise InvalidInput(
            "Unknown role.",
            errors=[FieldError("role", f"one of {', '.join(r.value for r in Role)}")],
        )
    return str(raw)


@service
def group_mapping_add(*, project: Project, actor: Actor, group: Any, role: Any) -> GroupMapping:
    """Members of IdP `group` get `role` on `project` at their next sign-in."""
    if not can_map_groups(actor, project):
        raise NotPermitted("Only a project admin, signed in, may map IdP groups to roles.")
    clean_role = _role_value(role)
    if not isinstance(group, str) or not group.strip() or len(group) > 200:
        raise InvalidInput(
            "Invalid group.", errors=[FieldError("group", "the IdP group name, 1 to 200 chars")]
        )
    if GroupMapping.objects.filter(project=project, group=group, role=clean_role).exists():
        raise InvalidInput(
            "This mapping exists already.", errors=[FieldError("group", "already mapped")]
        )
    assert actor.person is not None  # can_map_groups
    mapping = GroupMapping.objects.create(
        project=project, group=group, role=clean_role, created_by=actor.person
    )
    audit_record(
        action="group_mapping_added",
        actor=actor,
        project_id=project.pk,
        data={"mapping": mapping.pk, "group": group, "role": clean_role},
    )
    return mapping


@service
def group_mapping_remove(*, mapping: GroupMapping, actor: Actor) -> None:
    """Stop mapping; roles it granted are revoked at each member's next sign-in."""
    if not can_map_groups(actor, mapping.project):
        raise NotPermitted("Only a project admin, signed in, may remove group mappings.")
    audit_record(
        action="group_mapping_removed",
        actor=actor,
        project_id=mapping.project_id,
        data={"mapping": mapping.pk, "group": mapping.group, "role": mapping.role},
    )
    mapping.delete()


def group_mapping_for(actor: Actor, mapping_id: int) -> GroupMapping:
    mapping = GroupMapping.objects.select_related("project").filter(pk=mapping_id).first()
    if mapping is None or not actor.can(mapping.project, Capability.READ):
        raise NotFound("No such group mapping.")
    return mapping


# Single sign-on ------------------------------------------------------------------------------

_USERNAME_SAFE = re.compile(r"[^\w.@+-]")


def _new_username(claims: Mapping[str, Any]) -> str:
    """A readable, unused username; it only labels the person, who is found by issuer + sub."""
    User = get_user_model()
    base = ""
    for name in ("preferred_username", "nickname", "email"):
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            base = _USERNAME_SAFE.sub("", value.strip().split("@")[0])[:120]
            break
    base = base or "sso-user"
    candidate, n = base, 1
    while User.objects.filter(username=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


@dataclass
class SignInResult:
    user: User
    created: bool
    granted: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def _groups(claims: Mapping[str, Any], claim_name: str) -> list[str]:
    raw = claims.get(claim_name)
    if not isinstance(raw, list):
        return []
    return sorted({g for g in raw if isinstance(g, str) and g})


def sso_sign_in(*, issuer: str, claims: Mapping[str, Any], groups_claim: str) -> SignInResult:
    """The person the IdP vouched for (issuer + `sub`), created at first sign-in, with their
    IdP-sourced roles granted and revoked to match their groups. An e-mail is never used to
    find anyone: a changed or shared address takes over nobody.

    The person is recorded in one transaction, then each role change runs as its own service
    (each takes its project's lock before its audit event, releasegate/transactions.py): one
    transaction over several projects' grants would lock a project after an audit head. A role
    change that failed is reconciled at the next sign-in."""
    result, groups = _identity_record(issuer=issuer, claims=claims, groups_claim=groups_claim)
    _sync_idp_roles(result, groups)
    audit_record(
        action="sso_signed_in",
        actor=Actor.for_user(result.user),
        data={
            "user": result.user.get_username(),
            "issuer": issuer,
            "sub": claims.get("sub"),
            "groups": groups,
            "granted": result.granted,
            "revoked": result.revoked,
            "refused": result.refused,
        },
    )
    return result


@service
def _identity_record(
    *, issuer: str, claims: Mapping[str, Any], groups_claim: str
) -> tuple[SignInResult, list[str]]:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise InvalidInput("The IdP sent no subject.", errors=[FieldError("sub", "missing")])
    email = claims.get("email") if isinstance(claims.get("email"), str) else ""
    groups = _groups(claims, groups_claim)
    # Not locked: role_grant below works at lower lock ranks than an account row. Two first
    # sign-ins of one person race on the unique (issuer, sub) key; the loser finds the winner's.
    found = ExternalIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject)
    identity = found.first()
    created = False
    if identity is None:
        try:
            with transaction.atomic():
                user = get_user_model().objects.create_user(
                    username=_new_username(claims), email=str(email)[:254]
                )
                user.set_unusable_password()
                user.save(update_fields=["password"])
                identity = ExternalIdentity.objects.create(
                    issuer=issuer, subject=subject, user=user, email=str(email)[:254], groups=groups
                )
            created = True
        except IntegrityError:
            identity = found.get()
    if created:
        user = identity.user
        audit_record(
            action="sso_user_created",
            actor=Actor.for_user(user),
            data={"user": user.get_username(), "issuer": issuer, "sub": subject},
        )
    else:
        user = identity.user
        if not user.is_active:
            raise NotPermitted("This account is disabled.", code="user_inactive")
        identity.email = str(email)[:254]
        identity.groups = groups
        identity.last_login_at = timezone.now()
        identity.save(update_fields=["email", "groups", "last_login_at"])
    return SignInResult(user=user, created=created), groups


def _sync_idp_roles(result: SignInResult, groups: list[str]) -> None:
    """Grant the roles the person's groups map to and revoke IdP-sourced roles they no longer
    map to, each through role_grant / role_revoke in the name of the admin who made the mapping:
    every rule of those services holds (nobody grants themselves a role, confirmations of
    veto-role changes). A role held by hand is left alone and stays hand-granted."""
    user = result.user
    desired: dict[tuple[int, str], GroupMapping] = {}
    for mapping in GroupMapping.objects.filter(group__in=groups).select_related(
        "project", "created_by"
    ):
        desired.setdefault((mapping.project_id, mapping.role), mapping)
    existing = {
        (g.project_id, g.role): g
        for g in IdpRoleGrant.objects.filter(user=user).select_related("project", "granted_by")
    }
    for _key, mapping in sorted(desired.items()):
        label = f"{mapping.project.slug}:{mapping.role}"
        held = roles_for(user, mapping.project)
        if Role(mapping.role) in held:
            continue  # from the IdP already, or by hand (then it stays the admin's grant)
        try:
            role_grant(
                project=mapping.project,
                user=user,
                role=mapping.role,
                actor=Actor.for_user(mapping.created_by),
            )
        except ReleasegateError as refused:
            result.refused.append(f"{label}: {refused.message}")
            continue
        if Role(mapping.role) in roles_for(user, mapping.project):
            IdpRoleGrant.objects.update_or_create(
                project=mapping.project,
                user=user,
                role=mapping.role,
                defaults={"group": mapping.group, "granted_by": mapping.created_by},
            )
            result.granted.append(label)
    for key, grant in sorted(existing.items()):
        if key in desired:
            continue
        label = f"{grant.project.slug}:{grant.role}"
        if grant.granted_by is None:
            result.refused.append(f"{label}: the admin who granted it no longer exists")
            continue
        try:
            role_revoke(
                project=grant.project,
                user=user,
                role=grant.role,
                actor=Actor.for_user(grant.granted_by),
            )
        except ReleasegateError as refused:
            result.refused.append(f"{label}: {refused.message}")
            continue
        if Role(grant.role) not in roles_for(user, grant.project):
            grant.delete()
            result.revoked.append(label)
