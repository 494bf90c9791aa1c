from django.urls import URLPattern, URLResolver, path

from releasegate.identity import views

app_name = "identity"

urlpatterns: list[URLPattern | URLResolver] = [
    path("sso/login/", views.sso_start, name="sso_start"),
    path("sso/callback/", views.sso_callback, name="sso_callback"),
    path("projects/<slug:slug>/identities/", views.project_identities, name="project"),
    path("projects/<slug:slug>/identities/trust/", views.trust_policy_add_view, name="trust_add"),
    path(
        "projects/<slug:slug>/identities/trust/<int:policy_id>/remove/",
        views.trust_policy_remove_view,
        name="trust_remove",
    ),
    path("projects/<slug:slug>/identities/groups/", views.group_mapping_add_view, name="group_add"),
    path(
        "projects/<slug:slug>/identities/groups/<int:mapping_id>/remove/",
        views.group_mapping_remove_view,
        name="group_remove",
    ),
]
