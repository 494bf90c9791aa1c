"""releasegate settings, read from environment variables.

Embedded defaults run a first look on one machine (SQLite, a local file broker). Production sets
DEBUG=false and must then provide a real SECRET_KEY; see docs/operations.md "Configuration".
"""

import re
from pathlib import Path

import django_stubs_ext
from csp import constants as csp_constants
from django.core.exceptions import ImproperlyConfigured

from releasegate.env import (
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_str,
    env_token_origins,
)

# The generic classes of django-stubs (ModelAdmin[Release], ...) become subscriptable at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("RELEASEGATE_DATA_DIR", str(BASE_DIR / "data")))

INSECURE_SECRET_KEY = "insecure-releasegate-dev-key-change-me"  # noqa: S105

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", INSECURE_SECRET_KEY)
if not DEBUG and (SECRET_KEY == INSECURE_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random value of at least 32 characters when DEBUG is off "
        "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))')"
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
if not DEBUG and any(host in {"*", "."} for host in ALLOWED_HOSTS):
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must name the service's host names when DEBUG is off, not '*' "
        "(e.g. ALLOWED_HOSTS=releasegate.example.com): a wildcard lets any Host header through"
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "releasegate.audit",
    "releasegate.accounts",
    "releasegate.releases",
    "releasegate.checks",
    "releasegate.api",
    "releasegate.web",
    "releasegate.ops",
    "releasegate.notifications",
    "releasegate.signing",
    "releasegate.attestations",
    "releasegate.incidents",
    "releasegate.identity",
]

MIDDLEWARE = [
    "releasegate.ops.middleware.RequestContextMiddleware",
    "releasegate.ops.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Bearer-token GETs of the gate are answered here, as the rest of the stack would answer them
    # (releasegate/api/lean.py); everything else goes on.
    "releasegate.api.lean.LeanGateMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "releasegate.web.middleware.SecurityHeadersMiddleware",
]

# Pages load only our own scripts, styles and images; no inline script, no framing, forms post
# only back to us. The API's browsable docs (drf-spectacular's Swagger UI) bootstrap with an
# inline script, so they alone go without it.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/api/v1/docs"],
    "DIRECTIVES": {
        "default-src": [csp_constants.SELF],
        "script-src": [csp_constants.SELF],
        "style-src": [csp_constants.SELF],
        "img-src": [csp_constants.SELF, "data:"],
        "font-src": [csp_constants.SELF],
        "connect-src": [csp_constants.SELF],
        "object-src": [csp_constants.NONE],
        "base-uri": [csp_constants.NONE],
        "form-action": [csp_constants.SELF],
        "frame-ancestors": [csp_constants.NONE],
    },
}

ROOT_URLCONF = "releasegate.urls"
WSGI_APPLICATION = "releasegate.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url("DATABASE_URL", f"sqlite:///{DATA_DIR / 'releasegate.sqlite3'}")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "releasegate.identity.backends.LocalPasswordBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user object; anonymous callers see nothing

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if env_bool("RELEASEGATE_FAST_PASSWORD_HASHER", False):
    # Tests only: hashing with PBKDF2 dominates a test suite that signs people in.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
WHITENOISE_USE_FINDERS = DEBUG
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_URL = "/media/"

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# Request bodies: evidence documents (an SBOM) can be large, anything beyond is refused with 413.
# The PEM file of the ECDSA P-256 key that signs attestations and audit checkpoints; unset, the
# embedded default (DEBUG on) generates one in the data folder.
RELEASEGATE_SIGNING_KEY = env_str("RELEASEGATE_SIGNING_KEY", "")
# The service's public base URL: the `verifier.id` of every attestation, and the base of the
# release and policy URLs it names. The embedded default's own address when unset.
RELEASEGATE_BASE_URL = env_str("RELEASEGATE_BASE_URL", "http://localhost:8000").rstrip("/")
if not re.match(r"^https?://[A-Za-z0-9.\-\[\]:]+(/[^\s?#]*)?$", RELEASEGATE_BASE_URL):
    raise ImproperlyConfigured(
        "RELEASEGATE_BASE_URL must be the service's http(s) base URL without query or fragment "
        f"(e.g. https://releasegate.example.com), got {RELEASEGATE_BASE_URL!r}"
    )
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("RELEASEGATE_MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

# Security headers and cookies.
SESSION_COOKIE_HTTPONLY = True
# A working day; signing out or closing the browser ends it sooner.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=300)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# Django REST framework.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "releasegate.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "releasegate.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "releasegate API",
    "DESCRIPTION": "Ask whether a release of an AI system is cleared before it deploys.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Celery: Redis in production; a local file broker that needs no server for the embedded default.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", env_str("REDIS_URL", "filesystem://"))
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.2,  # the file broker is polled; the default of 1 s is one check/s
    }
else:
    # Longer than any task's hard time limit, so a slow task is never handed out twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
RELEASEGATE_SWEEP_SECONDS = env_int("RELEASEGATE_SWEEP_SECONDS", 30, minimum=1)
# How often the scheduler enqueues notification outbox rows left unexpanded (a broker outage).
RELEASEGATE_OUTBOX_SWEEP_SECONDS = env_int("RELEASEGATE_OUTBOX_SWEEP_SECONDS", 15, minimum=1)
# Checks: acknowledged only when done, re-queued if the worker dies, one message at a time.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True  # the database holds results, not a result backend
# Celery's Django fixup closes every database connection before and after each task unless this is
# set: a new PostgreSQL connection (a server process forked, authenticated) for every check. With
# it the fixup closes them every 2 x N tasks, and before each task releasegate.ops.receivers drops
# a connection that broke or outlived CONN_MAX_AGE, as Django does between requests.
CELERY_DB_REUSE_MAX = 500
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task running when the broker connection drops is cancelled (and redelivered, or swept again)
# rather than finishing unacknowledged; Celery 6 makes this the default.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_SOFT_TIME_LIMIT = env_int("RELEASEGATE_CHECK_SOFT_SECONDS", 120, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int(
    "RELEASEGATE_CHECK_HARD_SECONDS", CELERY_TASK_SOFT_TIME_LIMIT + 30, minimum=2
)
if CELERY_TASK_TIME_LIMIT <= CELERY_TASK_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured("RELEASEGATE_CHECK_HARD_SECONDS must exceed the soft limit")
RELEASEGATE_CHECK_MAX_RETRIES = env_int("RELEASEGATE_CHECK_MAX_RETRIES", 3, minimum=0)
RELEASEGATE_CHECK_RETRY_BACKOFF_SECONDS = env_int(
    "RELEASEGATE_CHECK_RETRY_BACKOFF_SECONDS", 5, minimum=1
)
RELEASEGATE_CHECK_RETRY_BACKOFF_MAX_SECONDS = 300
RELEASEGATE_EXTERNAL_CI_TIMEOUT_SECONDS = env_int(
    "RELEASEGATE_EXTERNAL_CI_TIMEOUT_SECONDS", 10, minimum=1
)
# The only environment variables a worker sends as a CI bearer token (policy.external_ci
# token_env), each to its one origin: a project admin names a variable, never a secret.
RELEASEGATE_EXTERNAL_CI_TOKENS = env_token_origins("RELEASEGATE_EXTERNAL_CI_TOKENS")
if CELERY_BROKER_URL != "filesystem://":
    # The visibility timeout must outlast any task and any retry delay (see the Redis branch).
    CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = max(
        3600, CELERY_TASK_TIME_LIMIT + RELEASEGATE_CHECK_RETRY_BACKOFF_MAX_SECONDS + 60
    )
CELERY_BEAT_SCHEDULE = {
    "sweep-checks": {
        "task": "releasegate.checks.sweep",
        "schedule": float(RELEASEGATE_SWEEP_SECONDS),
        "options": {"expires": float(RELEASEGATE_SWEEP_SECONDS)},
    },
    # Outbox notices a broker outage left unexpanded are enqueued again within seconds.
    "sweep-notices": {
        "task": "releasegate.ops.tasks.sweep_notices",
        "schedule": float(RELEASEGATE_OUTBOX_SWEEP_SECONDS),
        "options": {"expires": float(RELEASEGATE_OUTBOX_SWEEP_SECONDS)},
    },
    # Notifications left pending (a lost worker, a broker outage) are taken up again.
    "sweep-notifications": {
        "task": "releasegate.ops.tasks.sweep_deliveries",
        "schedule": 300.0,
        "options": {"expires": 300.0},
    },
}
# Signed audit checkpoints (docs/audit.md): the scheduler writes one into this folder every
# RELEASEGATE_CHECKPOINT_SECONDS when it is set; keep the folder off the database's host.
RELEASEGATE_CHECKPOINT_DIR = env_str("RELEASEGATE_CHECKPOINT_DIR", "")
RELEASEGATE_CHECKPOINT_SECONDS = env_int("RELEASEGATE_CHECKPOINT_SECONDS", 3600, minimum=1)
if RELEASEGATE_CHECKPOINT_DIR:
    CELERY_BEAT_SCHEDULE["publish-audit-checkpoint"] = {
        "task": "releasegate.audit.tasks.publish_checkpoint",
        "schedule": float(RELEASEGATE_CHECKPOINT_SECONDS),
        "options": {"expires": float(RELEASEGATE_CHECKPOINT_SECONDS)},
    }

EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "releasegate@localhost")

# One JSON object per line on stderr (LOG_FORMAT=text for people reading a terminal), with the
# request id, and every record scrubbed of tokens, passwords and session ids.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "releasegate.ops.logs.RequestIdFilter"},
        "redact": {"()": "releasegate.ops.logs.RedactSecretsFilter"},
    },
    "formatters": {
        "json": {"()": "releasegate.ops.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "text" if env_str("LOG_FORMAT", "json") == "text" else "json",
            "filters": ["request_id", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # The request middleware logs every request once, with its id; Django's own 4xx/5xx
        # lines would repeat them (and carry the whole request object).
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
        # httpx logs each request's full URL at INFO; a webhook URL can be a credential.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
# Celery keeps the logging configured above instead of installing its own handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Operations: /metrics needs `Authorization: Bearer $METRICS_TOKEN` when DEBUG is off (and is a
# 404 without a token configured); /readyz gives the broker this many seconds to answer.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
if METRICS_TOKEN and len(METRICS_TOKEN) < 24:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 24 characters when set")
RELEASEGATE_READY_TIMEOUT = env_int("RELEASEGATE_READY_TIMEOUT", 2, minimum=1)
RELEASEGATE_WORKER_METRICS_PORT = env_int("RELEASEGATE_WORKER_METRICS_PORT", 0, minimum=0)
RELEASEGATE_WORKER_METRICS_ADDR = env_str("RELEASEGATE_WORKER_METRICS_ADDR", "0.0.0.0")  # noqa: S104

# Notifications: webhook deliveries are retried with exponential back-off, then recorded failed.
RELEASEGATE_NOTIFY_MAX_ATTEMPTS = env_int("RELEASEGATE_NOTIFY_MAX_ATTEMPTS", 5, minimum=1)
RELEASEGATE_NOTIFY_BACKOFF_SECONDS = env_int("RELEASEGATE_NOTIFY_BACKOFF_SECONDS", 30, minimum=1)
RELEASEGATE_WEBHOOK_TIMEOUT = env_int("RELEASEGATE_WEBHOOK_TIMEOUT", 10, minimum=1)
RELEASEGATE_WEBHOOK_ALLOW_HTTP = env_bool("RELEASEGATE_WEBHOOK_ALLOW_HTTP", DEBUG)
# Webhooks to loopback, private and link-local addresses are refused unless this is on.
RELEASEGATE_WEBHOOK_ALLOW_PRIVATE = env_bool("RELEASEGATE_WEBHOOK_ALLOW_PRIVATE", DEBUG)

# Identities without stored secrets (docs/identity.md). CI: OIDC ID tokens of these issuers only
# are exchanged for short-lived service tokens. A plain-http issuer is accepted on loopback only,
# and only with DEBUG on (tests turn this on explicitly; no variable turns it on in production).
RELEASEGATE_OIDC_ISSUERS = env_list(
    "RELEASEGATE_OIDC_ISSUERS",
    ["https://token.actions.githubusercontent.com", "https://gitlab.com"],
)
RELEASEGATE_OIDC_ALLOW_LOOPBACK_HTTP = DEBUG
# The shortest life of a minted token (a trust policy's lifetime), 5 minutes. Not read from the
# environment: the tests shorten it to watch `releasegate --oidc gate --wait` outlive one.
RELEASEGATE_OIDC_MIN_LIFETIME_SECONDS = 300
RELEASEGATE_OIDC_TIMEOUT_SECONDS = env_int("RELEASEGATE_OIDC_TIMEOUT_SECONDS", 5, minimum=1)
RELEASEGATE_OIDC_JWKS_CACHE_SECONDS = env_int(
    "RELEASEGATE_OIDC_JWKS_CACHE_SECONDS", 900, minimum=60
)
# People: OpenID Connect sign-in, on when OIDC_ISSUER is set; password sign-in can be turned off.
OIDC_ISSUER = env_str("OIDC_ISSUER", "").rstrip("/")
OIDC_CLIENT_ID = env_str("OIDC_CLIENT_ID", "")
OIDC_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET", "")
OIDC_SCOPES = env_str("OIDC_SCOPES", "openid email profile groups")
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")
RELEASEGATE_LOCAL_LOGIN = env_bool("RELEASEGATE_LOCAL_LOGIN", True)
if OIDC_ISSUER and not (OIDC_CLIENT_ID and OIDC_CLIENT_SECRET):
    raise ImproperlyConfigured("OIDC_ISSUER needs OIDC_CLIENT_ID and OIDC_CLIENT_SECRET")
if not RELEASEGATE_LOCAL_LOGIN and not OIDC_ISSUER:
    raise ImproperlyConfigured(
        "RELEASEGATE_LOCAL_LOGIN=false needs OIDC_ISSUER: otherwise nobody could sign in"
    )
