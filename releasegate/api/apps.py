from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "releasegate.api"
    label = "api"
