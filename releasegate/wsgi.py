import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releasegate.settings")
application = get_wsgi_application()
# Import the URLconf, and with it every view, now rather than on the first request: gunicorn
# forks its workers from this process (`preload_app`), so they start warm. No database is read.
get_resolver().url_patterns  # noqa: B018 - the property imports the URLconf
