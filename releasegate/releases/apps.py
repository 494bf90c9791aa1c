from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReleasesConfig(AppConfig):
    name = "releasegate.releases"
    label = "releases"

    def ready(self) -> None:
        from releasegate.releases.gate_statement import create_functions

        # The gate statements' functions read the tables as the migrations leave them.
        post_migrate.connect(create_functions, sender=self, dispatch_uid="releases.gate_functions")
