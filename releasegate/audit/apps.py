from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "releasegate.audit"
    label = "audit"
