"""`manage.py check` (and `check --deploy`) says when the signing key cannot sign: with DEBUG off
there is no generated key, so attestations, the public keys and audit checkpoints would fail."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error

from releasegate.signing.keys import SigningKeyError, read_private_key


def signing_key_usable(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.DEBUG:
        return []  # the embedded default generates its key in the data folder on first use
    configured = settings.RELEASEGATE_SIGNING_KEY
    if not configured:
        return [
            Error(
                "RELEASEGATE_SIGNING_KEY is not set: with DEBUG off attestations, the public "
                "keys and audit checkpoints cannot be signed.",
                hint="openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 "
                "-nocrypt -out signing-key.pem; then RELEASEGATE_SIGNING_KEY=/path/signing-key.pem",
                id="releasegate.E001",
            )
        ]
    try:
        read_private_key(Path(configured))
    except SigningKeyError as exc:
        return [Error(str(exc), id="releasegate.E002")]  # names the file, never its content
    return []
