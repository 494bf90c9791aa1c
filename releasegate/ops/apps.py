from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "releasegate.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from releasegate.ops import receivers  # noqa: F401 - connects the signal receivers
