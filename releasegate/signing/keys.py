"""releasegate's signing key: ECDSA P-256 with SHA-256, what cosign and Kyverno verify with a
public key.

The private key is read from the PEM file named by `RELEASEGATE_SIGNING_KEY` (production) or, when
that is unset, from `<data folder>/signing-key.pem`, generated on first use (the embedded default).
It is never logged, stored in the database or returned: only its public half is registered (the
`SigningKey` table), under a key id that is the hex SHA-256 of its DER SubjectPublicKeyInfo.
Retired public keys stay registered so that earlier signatures still verify.
"""

import base64
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from releasegate.signing.models import SigningKey

_lock = threading.Lock()
# Per key file: the key loaded from it and the file's (inode, mtime) when it was read.
_loaded: dict[str, tuple["LoadedKey", tuple[int, int]]] = {}


class SigningKeyError(Exception):
    """The configured key cannot be used (missing file, not PEM, not an ECDSA P-256 key)."""


@dataclass(frozen=True)
class LoadedKey:
    keyid: str
    private: ec.EllipticCurvePrivateKey
    public_pem: str


@dataclass(frozen=True)
class PublicKey:
    keyid: str
    status: str
    pem: str

    def as_jwk(self) -> dict[str, Any]:
        numbers = load_public_pem(self.pem).public_numbers()

        def b64(n: int) -> str:
            return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64(numbers.x),
            "y": b64(numbers.y),
            "alg": "ES256",
            "use": "sig",
            "kid": self.keyid,
        }


def key_path() -> Path:
    configured = getattr(settings, "RELEASEGATE_SIGNING_KEY", "")
    return Path(configured) if configured else Path(settings.DATA_DIR) / "signing-key.pem"


def keyid_of(public: ec.EllipticCurvePublicKey) -> str:
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def public_pem_of(public: ec.EllipticCurvePublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_pem(pem: str | bytes) -> ec.EllipticCurvePublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError("not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningKeyError("not an ECDSA P-256 public key")
    return key


def read_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # The message names the file, never its content.
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningKeyError(f"{path} is not an ECDSA P-256 key")
    return key


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a private key readable by its owner only, replacing any file atomically."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.replace(tmp, path)


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def active_key() -> LoadedKey:
    """The key to sign with now (generated on the embedded default), read again only when its
    file was replaced: `rotate_signing_key` in another process (or a new secret mounted) is
    what every running web process signs with from its next signature."""
    path = key_path()
    with _lock:
        cached = _loaded.get(str(path))
        if cached is not None and cached[1] == _stamp(path):
            return cached[0]
        if not getattr(settings, "RELEASEGATE_SIGNING_KEY", ""):
            if not settings.DEBUG:
                # Replicas that each made their own key would sign with keys nobody distributed.
                raise SigningKeyError(
                    "RELEASEGATE_SIGNING_KEY must name a PEM ECDSA P-256 key file when DEBUG is "
                    "off (e.g. openssl ecparam -name prime256v1 -genkey -noout | "
                    "openssl pkcs8 -topk8 -nocrypt -out signing-key.pem)"
                )
            if not path.exists():
                write_private_key(path, generate_key())
        private = read_private_key(path)
        public = private.public_key()
        loaded = LoadedKey(keyid_of(public), private, public_pem_of(public))
        _register(loaded)
        _loaded[str(path)] = (loaded, _stamp(path))
        return loaded


def _stamp(path: Path) -> tuple[int, int]:
    """The file's identity and age: an atomic replace gives it a new inode."""
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_ino, stat.st_mtime_ns)


def forget_loaded_key() -> None:
    """Drop the per-process cache, so the next signature reads the key file again."""
    with _lock:
        _loaded.clear()


@transaction.atomic
def _register(key: LoadedKey) -> None:
    row, created = SigningKey.objects.get_or_create(
        keyid=key.keyid, defaults={"public_pem": key.public_pem}
    )
    if not created and row.status != SigningKey.Status.ACTIVE:
        row.status = SigningKey.Status.ACTIVE
        row.retired_at = None
        row.save(update_fields=["status", "retired_at"])
    SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).exclude(keyid=key.keyid).update(
        status=SigningKey.Status.RETIRED, retired_at=timezone.now()
    )


def sign(payload: bytes) -> tuple[str, bytes]:
    """Sign `payload` with the active key: (key id, DER-encoded ECDSA signature)."""
    key = active_key()
    return key.keyid, key.private.sign(payload, ec.ECDSA(hashes.SHA256()))


def verify(public: ec.EllipticCurvePublicKey, payload: bytes, signature: bytes) -> bool:
    try:
        public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def public_keys() -> list[PublicKey]:
    """Every key releasegate has signed with, the active one first."""
    active_key()
    rows = SigningKey.objects.order_by("status", "-created_at", "-id")
    return [PublicKey(r.keyid, r.status, r.public_pem) for r in rows]


def public_key_by_id(keyid: str) -> ec.EllipticCurvePublicKey | None:
    row = SigningKey.objects.filter(keyid=keyid).first()
    return load_public_pem(row.public_pem) if row is not None else None
