from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "releasegate.accounts"
    label = "accounts"
