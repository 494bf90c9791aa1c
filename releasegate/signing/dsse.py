"""DSSE envelopes (Dead Simple Signing Envelope, v1): the signature covers the pre-authentication
encoding of the payload type and the payload, never the JSON around them.

Opening an envelope needs only `cryptography`: the offline verifier (`releasegate verify`) uses
this module without Django, so the service's key store is imported only to sign.
"""

import base64
import binascii
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec


class EnvelopeError(Exception):
    """The envelope is malformed, or no signature in it verifies."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def sign_envelope(payload_type: str, payload: bytes) -> dict[str, Any]:
    from releasegate.signing import keys

    keyid, signature = keys.sign(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode()}],
    }


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise EnvelopeError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        # DSSE allows either alphabet; accept URL-safe too.
        try:
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise EnvelopeError(f"{what} is not base64") from None


def open_envelope(
    envelope: Any,
    *,
    payload_type: str,
    key_for: Callable[[str], ec.EllipticCurvePublicKey | None],
) -> tuple[bytes, str]:
    """The verified payload and the id of the key that signed it; raises EnvelopeError.

    `key_for(keyid)` names the public key to try for a signature (None: unknown key). A signature
    with no key id is tried against `key_for("")`.
    """
    if not isinstance(envelope, dict):
        raise EnvelopeError("the envelope is not a JSON object")
    if envelope.get("payloadType") != payload_type:
        raise EnvelopeError(f"the payload type is not {payload_type}")
    payload = _b64(envelope.get("payload"), "payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise EnvelopeError("the envelope has no signatures")
    message = pae(payload_type, payload)
    for entry in signatures:
        if not isinstance(entry, dict):
            continue
        keyid = entry.get("keyid") or ""
        if not isinstance(keyid, str):
            continue
        public = key_for(keyid)
        if public is None:
            continue
        try:
            signature = _b64(entry.get("sig"), "sig")
        except EnvelopeError:
            continue
        try:
            public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return payload, keyid
    raise EnvelopeError("no signature verifies with the given key")
