from django.urls import URLPattern, URLResolver, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from releasegate.api import (
    schema,  # noqa: F401  (registers the bearer scheme)
    views,
)
from releasegate.attestations import views as attestation_views
from releasegate.identity import api as identity_api
from releasegate.incidents import api as incidents

urlpatterns: list[URLPattern | URLResolver] = [
    path("gate", views.GateView.as_view(), name="api-gate"),
    path("releases", views.ReleasesView.as_view(), name="api-releases"),
    path("releases/<int:release_id>", views.ReleaseDetailView.as_view(), name="api-release"),
    path(
        "releases/<int:release_id>/gate", views.ReleaseGateView.as_view(), name="api-release-gate"
    ),
    path(
        "releases/<int:release_id>/evidence/<str:kind>",
        views.EvidenceView.as_view(),
        name="api-evidence",
    ),
    path("releases/<int:release_id>/submit", views.SubmitView.as_view(), name="api-submit"),
    path("releases/<int:release_id>/signoffs", views.SignoffsView.as_view(), name="api-signoffs"),
    path(
        "releases/<int:release_id>/vetoes/<int:veto_id>/lift",
        views.VetoLiftView.as_view(),
        name="api-veto-lift",
    ),
    path("releases/<int:release_id>/checks", views.ChecksView.as_view(), name="api-checks"),
    path("releases/<int:release_id>/promote", views.PromoteView.as_view(), name="api-promote"),
    path("releases/<int:release_id>/audit", views.AuditView.as_view(), name="api-audit"),
    path("releases/<int:release_id>/withdraw", views.WithdrawView.as_view(), name="api-withdraw"),
    path("projects/<str:slug>/waivers", views.WaiversView.as_view(), name="api-waivers"),
    path("oidc/exchange", identity_api.ExchangeView.as_view(), name="api-oidc-exchange"),
    path(
        "projects/<str:slug>/trust-policies",
        identity_api.TrustPoliciesView.as_view(),
        name="api-trust-policies",
    ),
    path(
        "projects/<str:slug>/trust-policies/<str:policy_id>",
        identity_api.TrustPolicyView.as_view(),
        name="api-trust-policy",
    ),
    path(
        "projects/<str:slug>/group-mappings",
        identity_api.GroupMappingsView.as_view(),
        name="api-group-mappings",
    ),
    path(
        "projects/<str:slug>/group-mappings/<str:mapping_id>",
        identity_api.GroupMappingView.as_view(),
        name="api-group-mapping",
    ),
    path("projects/<str:slug>/alerts", incidents.AlertsView.as_view(), name="api-alerts"),
    path(
        "releases/<int:release_id>/holds/<int:hold_id>/lift",
        incidents.HoldLiftView.as_view(),
        name="api-hold-lift",
    ),
    path(
        "releases/<int:release_id>/break-glass",
        incidents.BreakGlassView.as_view(),
        name="api-break-glass",
    ),
    path(
        "releases/<int:release_id>/break-glass/<int:bg_id>/confirm",
        incidents.BreakGlassConfirmView.as_view(),
        name="api-break-glass-confirm",
    ),
    path(
        "releases/<int:release_id>/break-glass/<int:bg_id>/review",
        incidents.BreakGlassReviewView.as_view(),
        name="api-break-glass-review",
    ),
    path(
        "projects/<str:slug>/governance-requests",
        views.GovernanceRequestsView.as_view(),
        name="api-governance-requests",
    ),
    path(
        "projects/<str:slug>/governance-requests/<int:change_id>/confirm",
        views.GovernanceConfirmView.as_view(),
        name="api-governance-confirm",
    ),
    path(
        "projects/<str:slug>/governance-requests/<int:change_id>/reject",
        views.GovernanceRejectView.as_view(),
        name="api-governance-reject",
    ),
    path(
        "projects/<str:slug>/governance-requests/<int:change_id>/cancel",
        views.GovernanceCancelView.as_view(),
        name="api-governance-cancel",
    ),
    path("projects/<str:slug>/audit", views.ProjectAuditView.as_view(), name="api-project-audit"),
    path(
        "releases/<int:release_id>/attestation",
        attestation_views.ReleaseAttestationView.as_view(),
        name="api-release-attestation",
    ),
    path(
        "attestations/keys",
        attestation_views.SigningKeysView.as_view(),
        name="api-attestation-keys",
    ),
    path(
        "attestations/revocations",
        attestation_views.RevocationsView.as_view(),
        name="api-attestation-revocations",
    ),
    path(
        "admission/<str:environment>",
        attestation_views.AdmissionView.as_view(),
        name="api-admission",
    ),
    path(
        "schema",
        SpectacularAPIView.as_view(permission_classes=[AllowAny], authentication_classes=[]),
        name="api-schema",
    ),
    path(
        "docs",
        SpectacularSwaggerView.as_view(
            url_name="api-schema", permission_classes=[AllowAny], authentication_classes=[]
        ),
        name="api-docs",
    ),
    # Anything else under /api/v1/ is a JSON 404 too, never an HTML page.
    # [\s\S], not ".": a path with a newline in it is unknown too, and answered in JSON.
    re_path(r"^[\s\S]*$", views.unknown_path, name="api-unknown"),
]
