import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releasegate.settings")

app = Celery("releasegate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
