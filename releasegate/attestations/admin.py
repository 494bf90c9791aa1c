"""Issued attestations and their revocations in the Django admin: read-only, written only by the
attestation services (in the transaction of the act that issues or revokes)."""

from django.contrib import admin

from releasegate.attestations.models import IssuedAttestation, Revocation
from releasegate.readonly_admin import ReadOnlyAdmin


@admin.register(IssuedAttestation)
class IssuedAttestationAdmin(ReadOnlyAdmin[IssuedAttestation]):
    list_display = ("id", "release", "environment", "subject_digest", "keyid", "issued_at")
    list_filter = ("environment",)
    search_fields = ("subject_digest",)


@admin.register(Revocation)
class RevocationAdmin(ReadOnlyAdmin[Revocation]):
    list_display = ("attestation", "cause", "revoked_by_label", "revoked_at")
    search_fields = ("cause", "reason")
