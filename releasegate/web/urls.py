from django.urls import URLPattern, URLResolver, path

from releasegate.identity.views import sign_out
from releasegate.web import dashboard_views, incidents, views

app_name = "web"

urlpatterns: list[URLPattern | URLResolver] = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", sign_out, name="logout"),
    path("", views.home, name="home"),
    path("releases/", views.release_list, name="releases"),
    path("releases/new/", views.release_new, name="release_new"),
    path("releases/<int:release_id>/", views.release_page, name="release"),
    path("releases/<int:release_id>/evidence/<str:kind>/", views.evidence_edit, name="evidence"),
    path("releases/<int:release_id>/submit/", views.release_submit_view, name="submit"),
    path("releases/<int:release_id>/approve/", views.approve, name="approve"),
    path("releases/<int:release_id>/veto/", views.veto, name="veto"),
    path("releases/<int:release_id>/vetoes/<int:veto_id>/lift/", views.lift, name="lift"),
    path("releases/<int:release_id>/promote/", views.promote, name="promote"),
    path("releases/<int:release_id>/withdraw/", views.withdraw, name="withdraw"),
    path("releases/<int:release_id>/audit/", views.audit_page, name="audit"),
    path(
        "releases/<int:release_id>/break-glass/",
        incidents.break_glass_request_view,
        name="break_glass",
    ),
    path(
        "releases/<int:release_id>/break-glass/<int:bg_id>/confirm/",
        incidents.break_glass_confirm_view,
        name="break_glass_confirm",
    ),
    path(
        "releases/<int:release_id>/break-glass/<int:bg_id>/review/",
        incidents.break_glass_review_view,
        name="break_glass_review",
    ),
    path(
        "releases/<int:release_id>/holds/<int:hold_id>/lift/",
        incidents.hold_lift_view,
        name="hold_lift",
    ),
    path("releases/<int:release_id>/audit.json", views.audit_json, name="audit_json"),
    path("projects/", views.project_list, name="projects"),
    path("projects/<slug:slug>/", views.project_page, name="project"),
    path("projects/<slug:slug>/dashboard/", dashboard_views.dashboard_page, name="dashboard"),
    path("dashboard/", dashboard_views.dashboards, name="dashboards"),
    path("projects/<slug:slug>/policy/", views.policy_edit, name="policy"),
    path("projects/<slug:slug>/roles/<str:act>/", views.role_change, name="roles"),
    path(
        "projects/<slug:slug>/requests/<int:change_id>/<str:act>/",
        views.governance_decide,
        name="governance",
    ),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke_view, name="token_revoke"),
]
