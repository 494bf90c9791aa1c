"""The attestation formats, and their offline verification.

An attestation is a DSSE envelope over an in-toto Statement v1 whose predicate is a SLSA
Verification Summary (VSA) v1; a revocation list is a DSSE envelope over releasegate's own JSON.
This module needs only `cryptography` (no Django), so that `releasegate verify` runs anywhere.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from releasegate.signing.dsse import EnvelopeError, open_envelope

STATEMENT_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
VSA_PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
REVOCATIONS_PAYLOAD_TYPE = "application/vnd.releasegate.revocations+json"
PASSED = "PASSED"
CLEARED_LEVEL_PREFIX = "RELEASEGATE_CLEARED_"
# Named besides the environment's level when the clearance came from a break-glass: a verifier
# that wants only clearances by the full policy refuses what carries it.
BREAK_GLASS_LEVEL = "RELEASEGATE_BREAK_GLASS"
# The predicate's own extension field (in-toto consumers ignore fields they do not know): the id
# that a revocation list names.
EXTENSION = "releasegate"
# A clock a little ahead of the signer's is not a forgery; further ahead is.
CLOCK_SKEW = timedelta(minutes=5)

DIGEST_RE = re.compile(r"\Asha256:([0-9a-f]{64})\Z")


def cleared_level(environment: str) -> str:
    """`RELEASEGATE_CLEARED_PRODUCTION` for `production`; `-` becomes `_`."""
    return CLEARED_LEVEL_PREFIX + re.sub(r"[^A-Z0-9]", "_", environment.upper())


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def load_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    """An ECDSA P-256 public key from PEM; ValueError for anything else."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise ValueError("not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not an ECDSA P-256 public key")
    return key


class Refused(Exception):
    """The attestation does not prove what was asked; the message says why."""


@dataclass(frozen=True)
class Verified:
    attestation_id: int | None
    subject: str
    environment: str
    time_verified: datetime
    keyid: str


KeyFor = Callable[[str], ec.EllipticCurvePublicKey | None]


def _open_json(envelope: Any, payload_type: str, key_for: KeyFor) -> tuple[dict[str, Any], str]:
    try:
        payload, keyid = open_envelope(envelope, payload_type=payload_type, key_for=key_for)
    except EnvelopeError as error:
        raise Refused(str(error)) from None
    try:
        document = json.loads(payload)
    except ValueError:
        raise Refused("the signed payload is not JSON") from None
    if not isinstance(document, dict):
        raise Refused("the signed payload is not a JSON object")
    return document, keyid


def _fresh(moment: datetime, now: datetime, max_age: timedelta, what: str) -> None:
    if moment > now + CLOCK_SKEW:
        raise Refused(f"{what} is dated in the future ({iso(moment)})")
    if now - moment > max_age:
        raise Refused(f"{what} is older than {max_age} (made {iso(moment)})")


def verify_attestation(
    envelope: Any,
    *,
    key_for: KeyFor,
    digest: str,
    environment: str,
    max_age: timedelta,
    now: datetime,
) -> Verified:
    """Whether `envelope` is a releasegate VSA, signed by a key `key_for` knows, saying that the
    artifact `digest` (`sha256:<hex>`) was cleared for `environment` no longer than `max_age`
    before `now`; raises Refused naming the first thing that fails."""
    match = DIGEST_RE.match(digest)
    if match is None:
        raise ValueError("the digest must be sha256:<64 lower-case hex>")
    statement, keyid = _open_json(envelope, STATEMENT_PAYLOAD_TYPE, key_for)
    if statement.get("_type") != STATEMENT_TYPE:
        raise Refused(f"the payload is not an in-toto Statement v1 ({STATEMENT_TYPE})")
    if statement.get("predicateType") != VSA_PREDICATE_TYPE:
        raise Refused(f"the predicate is not a SLSA verification summary ({VSA_PREDICATE_TYPE})")
    subjects = statement.get("subject")
    named = [
        s
        for s in (subjects if isinstance(subjects, list) else [])
        if isinstance(s, dict)
        and isinstance(s.get("digest"), dict)
        and s["digest"].get("sha256") == match.group(1)
    ]
    if not named:
        raise Refused(f"the attestation is not about {digest}")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise Refused("the statement has no predicate")
    if predicate.get("verificationResult") != PASSED:
        raise Refused(f"the verification result is not {PASSED}")
    levels = predicate.get("verifiedLevels")
    level = cleared_level(environment)
    if not isinstance(levels, list) or level not in levels:
        raise Refused(f"the release was not cleared for {environment} ({level} not verified)")
    verified_at = parse_time(predicate.get("timeVerified"))
    if verified_at is None:
        raise Refused("timeVerified is not a date and time")
    _fresh(verified_at, now, max_age, "the attestation")
    extension = predicate.get(EXTENSION)
    attestation_id = extension.get("attestation_id") if isinstance(extension, dict) else None
    return Verified(
        attestation_id=attestation_id if isinstance(attestation_id, int) else None,
        subject=str(named[0].get("name", "")),
        environment=environment,
        time_verified=verified_at,
        keyid=keyid,
    )


def check_not_revoked(
    verified: Verified,
    revocations: Any,
    *,
    key_for: KeyFor,
    digest: str,
    max_age: timedelta,
    now: datetime,
) -> None:
    """Raise Refused if the signed revocation list names the attestation (or is not a valid,
    fresh list: an old list cannot show a recent revocation)."""
    document, _ = _open_json(revocations, REVOCATIONS_PAYLOAD_TYPE, key_for)
    issued_at = parse_time(document.get("issued_at"))
    if issued_at is None:
        raise Refused("the revocation list has no issued_at date and time")
    _fresh(issued_at, now, max_age, "the revocation list")
    revoked = document.get("revoked")
    if not isinstance(revoked, list):
        raise Refused("the revocation list has no list of revocations")
    if verified.attestation_id is None:
        raise Refused("the attestation carries no id to look up in the revocation list")
    for entry in revoked:
        if isinstance(entry, dict) and entry.get("attestation_id") == verified.attestation_id:
            raise Refused(
                f"attestation {verified.attestation_id} of {digest} was revoked at "
                f"{entry.get('revoked_at')}: {entry.get('reason')}"
            )
