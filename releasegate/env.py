"""Typed readers for settings taken from the environment.

A malformed value fails at start-up with a message that names the variable, so a typo in a
deployment never silently falls back to a default.
"""

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import httpx
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false, 1/0, yes/no), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def url_origin(url: object) -> str | None:
    """`scheme://host[:port]` of an http(s) URL as httpx, which sends the requests, reads it: the
    host lower-cased, a default port left out. None for anything else."""
    if not isinstance(url, str):
        return None
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return None
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        return None
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{parsed.scheme}://{host}" + (f":{parsed.port}" if parsed.port is not None else "")


_ENV_NAME_RE = re.compile(r"\A[A-Z_][A-Z0-9_]{0,127}\Z")
_ORIGIN_RE = re.compile(r"\Ahttps?://[^/?#@\s\\]+/?\Z")
# The service's own secrets: never a CI token, whatever a deployment's variable says.
_NEVER_SENT = frozenset(
    {
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "RELEASEGATE_SIGNING_KEY",
        "OIDC_CLIENT_SECRET",
        "METRICS_TOKEN",
        "EMAIL_HOST_PASSWORD",
        "RELEASEGATE_TOKEN",
    }
)


def env_token_origins(name: str) -> dict[str, str]:
    """`NAME=https://host[:port] OTHER=https://...` (separated by spaces or newlines): each
    environment variable a worker may send as a bearer token, bound to the one origin it may be
    sent to. Unset or empty: none."""
    raw = os.environ.get(name, "")
    found: dict[str, str] = {}
    for entry in raw.split():
        variable, equals, origin = entry.partition("=")
        if not equals or not _ENV_NAME_RE.fullmatch(variable):
            raise ImproperlyConfigured(
                f"{name}: {entry!r} is not NAME=ORIGIN (NAME an environment variable in capitals, "
                "e.g. GITHUB_CI_TOKEN=https://api.github.com)"
            )
        if variable in _NEVER_SENT:
            raise ImproperlyConfigured(
                f"{name}: {variable} is one of releasegate's own secrets, never a CI token"
            )
        if variable in found:
            raise ImproperlyConfigured(f"{name}: {variable} is bound twice; one origin each")
        normalized = url_origin(origin) if _ORIGIN_RE.fullmatch(origin) else None
        if normalized is None:
            raise ImproperlyConfigured(
                f"{name}: {variable}={origin!r} must name an origin only: http(s)://host[:port], "
                "no path, query or user"
            )
        found[variable] = normalized
    return found


def database_from_url(name: str, default: str) -> dict[str, object]:
    """Turn `postgres://user:pass@host:port/db` or `sqlite:///path` into a DATABASES entry."""
    raw = os.environ.get(name, default)
    parsed = urlparse(raw)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        if raw.startswith("sqlite:///") and not raw.startswith("sqlite:////"):
            path = path.lstrip("/")
        if not path:
            raise ImproperlyConfigured(
                f"{name} must name a SQLite file, e.g. sqlite:///data/db.sqlite3"
            )
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        if not parsed.path.strip("/"):
            raise ImproperlyConfigured(f"{name} must name a database, e.g. postgres://user@host/db")
        options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
            # A health check costs a round trip before every request's first query. Off by
            # default: a read that meets a kept connection dead is run again on a new one
            # (ops.middleware.DatabaseUnavailableMiddleware) and a write retries in its service.
            "CONN_HEALTH_CHECKS": env_bool("DATABASE_CONN_HEALTH_CHECKS", False),
            # Django's own cursors bind client-side and never prepare; this only lets the few
            # statements that ask for it (the gate read) be prepared once per connection. Turn it
            # off behind a pooler in transaction mode, where a connection's statements are lost.
            "OPTIONS": {
                **options,
                "prepare_threshold": 0 if env_bool("DATABASE_PREPARED_STATEMENTS", True) else None,
            },
        }
    raise ImproperlyConfigured(
        f"{name} must start with sqlite:/// or postgres://, got {raw.split(':', 1)[0]!r}"
    )
