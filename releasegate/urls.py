from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "releasegate administration"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("releasegate.api.urls")),
    path("", include("releasegate.ops.urls")),
    path("", include("releasegate.identity.urls")),
    path("", include("releasegate.web.urls")),
]
