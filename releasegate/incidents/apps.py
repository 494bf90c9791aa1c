from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "releasegate.incidents"
    label = "incidents"
