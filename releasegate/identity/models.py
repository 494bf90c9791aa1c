"""Identities without stored secrets: CI pipelines trusted by their OIDC ID tokens (trust
policies, remembered token ids), and people signed in by single sign-on (their issuer + subject,
IdP groups mapped to project roles, and which roles came from the IdP)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from releasegate.accounts.roles import Role


class TrustPolicy(models.Model):
    """A project trusts ID tokens of one issuer and audience whose claims match `claims` exactly;
    a match is exchanged for a short-lived service token with `scopes`. Removing a policy keeps
    the row (the tokens it minted and the audit trail name it)."""

    project = models.ForeignKey(
        "releases.Project", on_delete=models.CASCADE, related_name="trust_policies"
    )
    issuer = models.CharField(max_length=300)
    audience = models.CharField(max_length=200)
    claims = models.JSONField(help_text="claim name -> the exact value it must have")
    scopes = models.JSONField()
    lifetime_seconds = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["issuer", "audience"], name="trust_policy_issuer_aud")]

    def __str__(self) -> str:
        return f"trust policy {self.pk} of {self.project_id} for {self.issuer}"


class SeenTokenId(models.Model):
    """An ID token's `jti`, remembered until the token has expired, so it is exchanged once.
    The unique constraint makes two racing exchanges of one token end with one refusal."""

    issuer = models.CharField(max_length=300)
    jti = models.CharField(max_length=200)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "jti"], name="seen_token_id_once")]

    def __str__(self) -> str:
        return f"{self.jti} of {self.issuer}"


class ExternalIdentity(models.Model):
    """A person as their identity provider names them: issuer and `sub`, never the e-mail, which
    the person (or anyone creating an account at the IdP) can change."""

    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=255)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities"
    )
    email = models.CharField(max_length=254, blank=True)
    groups = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_login_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="external_identity_once")
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class GroupMapping(models.Model):
    """Members of the IdP group `group` hold `role` on `project`, granted and revoked at each of
    their sign-ins as their identity provider says.

    A row is a mapping in force. Mapping a group to a guarded role (releases.permissions
    `guarded_roles`) is itself the governance change: it waits, as a GovernanceChange, for a
    current holder of the role other than its author, and the row is written when confirmed
    (`confirmed_by`; None when the role was not guarded, or had no holder yet, when it was made)."""

    project = models.ForeignKey(
        "releases.Project", on_delete=models.CASCADE, related_name="group_mappings"
    )
    group = models.CharField(max_length=200)
    role = models.CharField(max_length=16, choices=[(r.value, r.value) for r in Role])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    in_force_since = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["group", "role"]
        constraints = [
            models.UniqueConstraint(fields=["project", "group", "role"], name="group_mapping_once")
        ]

    def __str__(self) -> str:
        return f"{self.group} -> {self.role} on {self.project_id}"


class IdpRoleGrant(models.Model):
    """A role a person holds because their IdP said so, through the mapping of `group`; roles
    without such a row were granted by hand and are never touched by a sign-in."""

    project = models.ForeignKey(
        "releases.Project", on_delete=models.CASCADE, related_name="idp_role_grants"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idp_role_grants"
    )
    role = models.CharField(max_length=16, choices=[(r.value, r.value) for r in Role])
    group = models.CharField(max_length=200)
    granted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user", "role"], name="idp_role_once")
        ]

    def __str__(self) -> str:
        return f"{self.role} on {self.project_id} from {self.group}"
