"""Loaded with `-p tests.plugin_env` before Django starts: safe settings for the test run.

DEBUG stays off, as in production; the secret key is random; PostgreSQL is used when it answers
on 127.0.0.1:5432 (or DATABASE_URL says where), else SQLite, and tests marked `postgres` skip,
except under CI=true, where they fail instead.
"""

import os
import secrets
import socket
import tempfile


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


os.environ.setdefault("DEBUG", "false")
# whitenoise looks for collected static files at start-up; the tests collect none.
os.environ.setdefault("STATIC_ROOT", tempfile.mkdtemp(prefix="releasegate-static-"))
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("CSRF_COOKIE_SECURE", "false")
os.environ.setdefault("RELEASEGATE_FAST_PASSWORD_HASHER", "true")
if "RELEASEGATE_SIGNING_KEY" not in os.environ:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    _key_path = os.path.join(tempfile.mkdtemp(prefix="releasegate-key-"), "signing-key.pem")
    with open(os.open(_key_path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as _handle:
        _handle.write(
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    os.environ["RELEASEGATE_SIGNING_KEY"] = _key_path
os.environ.setdefault("CELERY_BROKER_URL", "memory://")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
if "DATABASE_URL" not in os.environ and _reachable("127.0.0.1", 5432):
    os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/releasegate"
