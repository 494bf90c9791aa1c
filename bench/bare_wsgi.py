"""WSGI entry of the benchmark's floor apps (see bare_settings.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bare_settings")
application = get_wsgi_application()
