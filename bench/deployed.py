"""What a benchmark needs to run releasegate as deployed (DEBUG off) on loopback."""

import secrets
import tempfile
from pathlib import Path


def signing_key_file() -> Path:
    """A fresh P-256 signing key in a private temporary file: with DEBUG off the service refuses
    to start without one (releasegate.signing.checks)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = Path(tempfile.mkdtemp(prefix="releasegate-bench-key-")) / "signing-key.pem"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    return key


def production_environment() -> dict[str, str]:
    """DEBUG off, as deployed, with what that needs on loopback: a secret, a signing key file,
    plain HTTP allowed."""
    return {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "RELEASEGATE_SIGNING_KEY": str(signing_key_file()),
        "DJANGO_SETTINGS_MODULE": "releasegate.settings",
    }
