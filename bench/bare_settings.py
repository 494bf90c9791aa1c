"""Settings of the benchmark's floor apps (bench/gate_api.py): Django and DRF with nothing else.

No middleware, no authentication, no sessions; a database only when BARE_DATABASE_URL is set (the
one-read floor), kept open across requests as releasegate's production settings keep it.
"""

import os
from urllib.parse import urlparse

DEBUG = False
SECRET_KEY = "bench-floor-" + "x" * 40
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "bare_app"
INSTALLED_APPS = ["rest_framework"]
MIDDLEWARE: list[str] = []
USE_TZ = True
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}

_url = os.environ.get("BARE_DATABASE_URL", "")
if _url:
    _parsed = urlparse(_url)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _parsed.path.lstrip("/"),
            "USER": _parsed.username or "",
            "PASSWORD": _parsed.password or "",
            "HOST": _parsed.hostname or "",
            "PORT": str(_parsed.port or ""),
            "CONN_MAX_AGE": None,
        }
    }
else:
    DATABASES = {}
