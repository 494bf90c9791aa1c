from django.apps import AppConfig
from django.core import checks


class SigningConfig(AppConfig):
    name = "releasegate.signing"
    label = "signing"

    def ready(self) -> None:
        from releasegate.signing.checks import signing_key_usable

        checks.register(signing_key_usable)
