from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "releasegate.web"
    label = "web"
