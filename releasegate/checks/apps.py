from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


class ChecksConfig(AppConfig):
    name = "releasegate.checks"
    label = "checks"

    def ready(self) -> None:
        from releasegate.checks import receivers  # noqa: F401  (connects the signal receivers)

        # The embedded file broker needs its folders before anyone publishes or consumes.
        if settings.CELERY_BROKER_URL == "filesystem://":
            for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
                folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(key)
                if folder:
                    Path(str(folder)).mkdir(parents=True, exist_ok=True)
