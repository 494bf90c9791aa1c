from django.apps import AppConfig


class SigningConfig(AppConfig):
    name = "releasegate.signing"
    label = "signing"
