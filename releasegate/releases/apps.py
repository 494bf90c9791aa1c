from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releasegate.releases"
    label = "releases"
