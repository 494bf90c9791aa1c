from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "releasegate.ops"
    label = "ops"
