from django.apps import AppConfig


class ChecksConfig(AppConfig):
    name = "releasegate.checks"
    label = "checks"
