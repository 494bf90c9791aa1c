from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "releasegate.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from releasegate.notifications import receivers  # noqa: F401 - connects the receiver
