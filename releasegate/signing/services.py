from pathlib import Path

from django.db import transaction

from releasegate.accounts.actors import Actor
from releasegate.audit.services import audit_record
from releasegate.signing import keys


def signing_key_rotate(*, source: Path | None = None) -> str:
    """Replace the signing key file with a new key (generated, or read from `source`) and register
    it as the active key; the previous one is retired, never deleted. Returns the new key id."""
    previous = keys.active_key()
    new = keys.read_private_key(source) if source is not None else keys.generate_key()
    keys.write_private_key(keys.key_path(), new)
    keys.forget_loaded_key()
    with transaction.atomic():
        current = keys.active_key()
        audit_record(
            action="signing_key_rotated",
            actor=Actor.system_actor(),
            data={"keyid": current.keyid, "retired": previous.keyid},
        )
    return current.keyid
