from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "releasegate.identity"
    label = "identity"
