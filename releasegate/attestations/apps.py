from django.apps import AppConfig


class AttestationsConfig(AppConfig):
    name = "releasegate.attestations"
    label = "attestations"
