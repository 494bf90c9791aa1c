"""Writes of the identity area: trust policies and the OIDC exchange (CI), single sign-on and
IdP group mappings (people). Each is audited. A mapping of a guarded role is a governance change
(releases.services), and once in force, sign-ins grant and revoke its role directly."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from releasegate.accounts.actors import Actor, Scope
from releasegate.accounts.models import ApiToken
from releasegate.accounts.roles import Role
from releasegate.accounts.selectors import holder_ids, roles_for
from releasegate.accounts.tokens import token_create
from releasegate.audit.services import audit_record
from releasegate.errors import FieldError, InvalidInput, NotPermitted, ReleasegateError
from releasegate.identity import issuers
from releasegate.identity.models import (
    ExternalIdentity,
    GroupMapping,
    IdpRoleGrant,
    SeenTokenId,
    TrustPolicy,
)
from releasegate.identity.permissions import can_manage_trust, can_map_groups, idp_role_refusal
from releasegate.identity.trust import claims_match, clean_claims
from releasegate.notifications.people import people_tell
from releasegate.releases.models import GovernanceChange, Project
from releasegate.releases.permissions import guarded_roles
from releasegate.releases.services import group_mapping_request, role_apply_by_idp
from releasegate.transactions import LockRank, lock_one, service

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
    shortest = timedelta(seconds=settings.RELEASEGATE_OIDC_MIN_LIFETIME_SECONDS)
    if not isinstance(lifetime, timedelta) or not shortest <= lifetime <= MAX_LIFETIME:
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


def _role_value(raw: Any) -> Role:
    if raw not in {r.value for r in Role}:
        raise InvalidInput(
            "Unknown role.",
            errors=[FieldError("role", f"one of {', '.join(r.value for r in Role)}")],
        )
    return Role(raw)


def _group_name(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 200:
        raise InvalidInput(
            "Invalid group.", errors=[FieldError("group", "the IdP group name, 1 to 200 chars")]
        )
    if raw != raw.strip() or not raw.isprintable():
        # Compared exactly with what the IdP sends: a stray space would match nobody.
        raise InvalidInput(
            "Invalid group.", errors=[FieldError("group", "printable, without spaces around")]
        )
    return raw


def _locked_project(project: Project) -> Project:
    return lock_one(
        Project.objects.select_related("current_policy"), LockRank.PROJECT, pk=project.pk
    )


def mapping_waits(project: Project, role: Role) -> bool:
    """Whether mapping a group to `role`, or removing such a mapping, waits for a holder: the
    role is guarded on the project and somebody holds it (a deactivated holder too, as for a
    grant by hand). Otherwise it applies at once, as the first grant of a role does."""
    return role in guarded_roles(project.current_policy) and bool(
        holder_ids(project, {role}, active_only=False)
    )


@service
def group_mapping_add(
    *, project: Project, actor: Actor, group: Any, role: Any
) -> GroupMapping | GovernanceChange:
    """Members of IdP `group` hold `role` on `project`, as each of their sign-ins finds them.

    Mapping a guarded role is a governance change: it is returned pending, and the mapping is
    made when a current holder of the role other than `actor` confirms it. Any other mapping
    is in force at once."""
    if not can_map_groups(actor, project):
        raise NotPermitted("Only a project admin, signed in, may map IdP groups to roles.")
    clean_role = _role_value(role)
    clean_group = _group_name(group)
    locked = _locked_project(project)
    if GroupMapping.objects.filter(
        project=locked, group=clean_group, role=clean_role.value
    ).exists():
        raise InvalidInput(
            "This mapping exists already.", errors=[FieldError("group", "already mapped")]
        )
    if mapping_waits(locked, clean_role):
        return group_mapping_request(
            project=locked, group=clean_group, role=clean_role, actor=actor, remove=False
        )
    assert actor.person is not None  # can_map_groups
    return _mapping_write(
        project=locked, group=clean_group, role=clean_role, author=actor.person, actor=actor
    )


def _mapping_write(
    *,
    project: Project,
    group: str,
    role: Role,
    author: User,
    actor: Actor,
    confirmer: User | None = None,
    **why: Any,
) -> GroupMapping:
    mapping = GroupMapping.objects.create(
        project=project, group=group, role=role.value, created_by=author, confirmed_by=confirmer
    )
    audit_record(
        action="group_mapping_added",
        actor=actor,
        project_id=project.pk,
        data={
            "mapping": mapping.pk,
            "group": group,
            "role": role.value,
            "requested_by": author.get_username(),
            "confirmed_by": confirmer.get_username() if confirmer is not None else None,
            **why,
        },
    )
    return mapping


@service
def group_mapping_remove(*, mapping: GroupMapping, actor: Actor) -> GovernanceChange | None:
    """Stop mapping the group: the roles the mapping gave go at once (see `_mapping_drop`).
    Removing a guarded role's mapping takes roles from its holders, so, as a revocation by hand,
    it waits for a current holder of the role other than `actor`: returned pending."""
    if not can_map_groups(actor, mapping.project):
        raise NotPermitted("Only a project admin, signed in, may remove group mappings.")
    locked = _locked_project(mapping.project)
    current = GroupMapping.objects.filter(pk=mapping.pk).select_related("created_by").first()
    if current is None:
        return None  # removed already
    role = Role(current.role)
    if mapping_waits(locked, role):
        return group_mapping_request(
            project=locked, group=current.group, role=role, actor=actor, remove=True
        )
    _mapping_drop(project=locked, mapping=current, actor=actor)
    return None


def group_mapping_confirmed(*, change: GovernanceChange, actor: Actor) -> None:
    """Apply a group mapping request that `actor` confirmed. Called by
    `governance_change_confirm`, which holds the project's lock and decided who may confirm."""
    role = Role(change.role)
    found = (
        GroupMapping.objects.filter(project_id=change.project_id, group=change.group, role=role)
        .select_related("created_by", "confirmed_by")
        .first()
    )
    why = {"request": change.pk}
    if change.kind == GovernanceChange.Kind.GROUP_MAPPING_ADD:
        if found is None:
            _mapping_write(
                project=change.project,
                group=change.group,
                role=role,
                author=change.requested_by,
                confirmer=actor.person,
                actor=actor,
                **why,
            )
    elif found is not None:
        _mapping_drop(
            project=change.project,
            mapping=found,
            actor=actor,
            requested_by=change.requested_by.get_username(),
            confirmed_by=actor.label,
            **why,
        )


def _last_groups(user_ids: list[int]) -> dict[int, set[str]]:
    """The groups each person had at their last sign-in (one query)."""
    found: dict[int, set[str]] = {}
    for user_id, groups in ExternalIdentity.objects.filter(user_id__in=user_ids).values_list(
        "user_id", "groups"
    ):
        found.setdefault(user_id, set()).update(g for g in groups if isinstance(g, str))
    return found


def _mapping_drop(*, project: Project, mapping: GroupMapping, actor: Actor, **why: Any) -> None:
    """Delete the mapping and take its role at once from those who hold it through it, unless
    another mapping in force of the same role covers a group they had at their last sign-in
    (and they may hold it from that one): their role then stays, through that mapping. The
    caller holds the project's lock."""
    role = Role(mapping.role)
    audit_record(
        action="group_mapping_removed",
        actor=actor,
        project_id=project.pk,
        data={"mapping": mapping.pk, "group": mapping.group, "role": role.value, **why},
    )
    mapping.delete()
    grants = list(
        IdpRoleGrant.objects.filter(project=project, role=role, group=mapping.group)
        .select_related("user")
        .order_by("user_id")
    )
    if not grants:
        return
    others = list(
        GroupMapping.objects.filter(project=project, role=role).select_related(
            "created_by", "confirmed_by"
        )
    )
    groups_of = _last_groups([g.user_id for g in grants])
    guarded = guarded_roles(project.current_policy)
    revoked: list[User] = []
    for grant in grants:
        user = grant.user
        held = roles_for(user, project)
        other = next(
            (
                m
                for m in others
                if m.group in groups_of.get(user.pk, set())
                and idp_role_refusal(user, m, held, guarded) is None
            ),
            None,
        )
        if other is not None:
            grant.group = other.group
            grant.save(update_fields=["group"])
            continue
        role_apply_by_idp(
            project=project,
            user=user,
            role=role,
            grant=False,
            source="idp",
            group=mapping.group,
            reason="the group mapping was removed",
        )
        grant.delete()
        revoked.append(user)
    if revoked:
        _tell_veto_holders_changed(project, role, granted=[], revoked=revoked, why="")


def _tell_veto_holders_changed(
    project: Project, role: Role, *, granted: list[User], revoked: list[User], why: str
) -> None:
    """Tell the project's security holders (other than those concerned) when the IdP changes
    who holds a veto role, as they are told of other changes to who guards the gate."""
    policy = project.current_policy
    if policy is None or role.value not in policy.veto_roles or not (granted or revoked):
        return
    concerned = {u.pk for u in granted + revoked}
    lines = [f"{u.get_username()} now holds it (from the IdP{why})." for u in granted]
    lines += [f"{u.get_username()} no longer holds it (from the IdP)." for u in revoked]
    people_tell(
        user_ids=[uid for uid in holder_ids(project, {Role.SECURITY}) if uid not in concerned],
        subject=f"[releasegate] {project.slug}: who holds {role.value} changed by single sign-on",
        body="\n".join(lines) + f"\nSee the identities page of {project.slug} and its audit trail.",
    )


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

    The person is recorded in one transaction, then each project's IdP roles are brought in
    line in a transaction of their own (its project's lock, then its audit events,
    releasegate/transactions.py): one transaction over several projects would lock a project
    after an audit head. A project whose sync failed is reconciled at the next sign-in."""
    result, groups = _identity_record(issuer=issuer, claims=claims, groups_claim=groups_claim)
    _sync_idp_roles(result, groups, issuer)
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


@dataclass
class _Synced:
    granted: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def _sync_idp_roles(result: SignInResult, groups: list[str], issuer: str) -> None:
    """Bring the person's IdP-sourced roles in line with their groups, one project at a time
    (each its own transaction: a project's lock, then its audit events)."""
    user = result.user
    projects = set(
        GroupMapping.objects.filter(group__in=groups).values_list("project_id", flat=True)
    ) | set(IdpRoleGrant.objects.filter(user=user).values_list("project_id", flat=True))
    for project_id in sorted(projects):
        synced = _idp_roles_sync(project_id=project_id, user=user, groups=groups, issuer=issuer)
        result.granted += synced.granted
        result.revoked += synced.revoked
        result.refused += synced.refused


@service
def _idp_roles_sync(*, project_id: int, user: User, groups: list[str], issuer: str) -> _Synced:
    """On one project: grant each role a mapping in force of one of `groups` gives, and revoke
    the IdP-sourced roles none gives any more, directly (the mapping was the governance change).
    Nobody holds a role the rules of `idp_role_refusal` deny, whatever the IdP says: that is
    refused, recorded (`idp_role_refused`) and shown to the person. A role held by hand is left
    alone and stays hand-granted.

    Unguarded roles are settled first, so whether the person is an admin, which decides
    whether they may hold a guarded role from the IdP, is settled before guarded roles are."""
    project = lock_one(
        Project.objects.select_related("current_policy"), LockRank.PROJECT, pk=project_id
    )
    guarded = guarded_roles(project.current_policy)
    held = set(roles_for(user, project))
    by_role: dict[Role, list[GroupMapping]] = {}
    for mapping in GroupMapping.objects.filter(project=project, group__in=groups).select_related(
        "created_by", "confirmed_by"
    ):
        by_role.setdefault(Role(mapping.role), []).append(mapping)
    grants: dict[Role, IdpRoleGrant] = {}
    for grant in IdpRoleGrant.objects.filter(project=project, user=user):
        if Role(grant.role) in held:
            grants[Role(grant.role)] = grant
        else:
            grant.delete()  # revoked by hand since: no longer the IdP's
    synced = _Synced()
    changed: dict[Role, tuple[list[User], list[User], str]] = {}
    for role in sorted(set(by_role) | set(grants), key=lambda r: (r in guarded, r.value)):
        label = f"{project.slug}:{role.value}"
        if role in held and role not in grants:
            continue  # held by hand: stays the admin's grant, whatever the IdP says
        allowed: GroupMapping | None = None
        refusals: list[tuple[GroupMapping, NotPermitted]] = []
        for mapping in sorted(by_role.get(role, []), key=lambda m: m.group):
            refusal = idp_role_refusal(user, mapping, frozenset(held), guarded)
            if refusal is None:
                allowed = mapping
                break
            refusals.append((mapping, refusal))
        why: dict[str, Any] = {"source": "idp", "issuer": issuer}
        if allowed is not None:
            why.update(
                group=allowed.group,
                mapping=allowed.pk,
                mapped_by=allowed.created_by.get_username(),
                confirmed_by=(
                    allowed.confirmed_by.get_username() if allowed.confirmed_by else None
                ),
            )
            if role not in held:
                role_apply_by_idp(project=project, user=user, role=role, grant=True, **why)
                IdpRoleGrant.objects.create(
                    project=project, user=user, role=role.value, group=allowed.group
                )
                held.add(role)
                synced.granted.append(label)
                changed[role] = ([user], [], f" group {allowed.group}")
            elif grants[role].group != allowed.group:
                grants[role].group = allowed.group
                grants[role].save(update_fields=["group"])
            continue
        if role in grants:
            why["group"] = grants[role].group
            if refusals:
                why["reason"] = refusals[0][1].message
            role_apply_by_idp(project=project, user=user, role=role, grant=False, **why)
            grants[role].delete()
            held.discard(role)
            synced.revoked.append(label)
            changed[role] = ([], [user], "")
        for mapping, refusal in refusals:
            synced.refused.append(f"{label}: {refusal.message}")
            audit_record(
                action="idp_role_refused",
                actor=Actor.system_actor(),
                project_id=project.pk,
                data={
                    "user": user.get_username(),
                    "role": role.value,
                    "group": mapping.group,
                    "mapping": mapping.pk,
                    "code": refusal.code,
                    "reason": refusal.message,
                },
            )
    for role, (granted, revoked, why_text) in changed.items():
        _tell_veto_holders_changed(project, role, granted=granted, revoked=revoked, why=why_text)
    return synced
