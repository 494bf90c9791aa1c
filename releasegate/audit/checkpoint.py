"""Signed checkpoints of the audit trail: what an operator keeps outside the database.

A checkpoint is a signed note (C2SP signed-note / tlog-checkpoint layout, see docs/audit.md):

    releasegate/audit                        origin
    124                                      events in all chains
    q3Lb…=                                   RFC 9162 Merkle tree hash over the chain leaves
    time 2026-12-01T10:00:00.000000Z
    chain _global 3 <hex head hash>          one line per chain, sorted by name: these are
    chain support-assistant 121 <hex>        the leaves, "<name> <size> <hex head hash>"

    — releasegate/audit <base64(first 4 bytes of the key id || DER ECDSA P-256 signature)>

The signature covers the note text (every line above the blank line, with its newline). A chain's
head hash commits to every event before it, so the current log extends a checkpoint when each
chain it names still verifies and its event #size still has the head hash the checkpoint saw.
"""

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from django.utils.dateparse import parse_datetime

from releasegate.audit.models import AuditChain, AuditEvent
from releasegate.audit.services import HASHED_FIELDS, entry_hash, link_hash
from releasegate.signing import keys
from releasegate.signing.models import SigningKey

ORIGIN = "releasegate/audit"
_DASH = "\u2014"
_HEX = frozenset("0123456789abcdef")


class CheckpointError(Exception):
    """The file is not a checkpoint releasegate signed: malformed, forged or by an unknown key."""


@dataclass(frozen=True)
class ChainHead:
    name: str
    size: int
    head_hash: str

    def leaf(self) -> bytes:
        return f"{self.name} {self.size} {self.head_hash}".encode()


@dataclass(frozen=True)
class Checkpoint:
    time: datetime
    heads: tuple[ChainHead, ...]
    keyid_hint: str

    @property
    def size(self) -> int:
        return sum(h.size for h in self.heads)


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1: MTH over the leaves, with 0x00 / 0x01 domain separation."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        # Pairing left to right and carrying an odd last node up equals the RFC's split at the
        # largest power of two below n.
        paired = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def note_text(time: datetime, heads: list[ChainHead]) -> str:
    ordered = sorted(heads, key=lambda h: h.name)
    root = base64.b64encode(merkle_root([h.leaf() for h in ordered])).decode()
    lines = [
        ORIGIN,
        str(sum(h.size for h in ordered)),
        root,
        f"time {time.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}",
        *(f"chain {h.name} {h.size} {h.head_hash}" for h in ordered),
    ]
    return "".join(line + "\n" for line in lines)


def current_heads() -> list[ChainHead]:
    # One statement: every head as of one snapshot, each the hash of a committed event.
    return [
        ChainHead(name, size, head_hash)
        for name, size, head_hash in AuditChain.objects.order_by("name").values_list(
            "name", "size", "head_hash"
        )
    ]


def create_checkpoint(*, now: datetime) -> str:
    """A checkpoint of every chain as it stands, signed with the service key."""
    text = note_text(now, current_heads())
    keyid, signature = keys.sign(text.encode())
    blob = base64.b64encode(bytes.fromhex(keyid)[:4] + signature).decode()
    return f"{text}\n{_DASH} {ORIGIN} {blob}\n"


def _parse_body(text: str) -> tuple[datetime, tuple[ChainHead, ...]]:
    lines = text.removesuffix("\n").split("\n")
    if len(lines) < 4 or lines[0] != ORIGIN:
        raise CheckpointError(
            f"not a releasegate audit checkpoint (the first line is not {ORIGIN})"
        )
    size, root, stamp, *chain_lines = lines[1:]
    if not stamp.startswith("time "):
        raise CheckpointError("malformed checkpoint: no time line")
    try:
        time = datetime.strptime(stamp[5:], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise CheckpointError("malformed checkpoint: bad time line") from None
    heads = []
    for line in chain_lines:
        parts = line.split(" ")
        if (
            len(parts) != 4
            or parts[0] != "chain"
            or not parts[2].isdecimal()
            or len(parts[3]) != 64
            or not set(parts[3]) <= _HEX
        ):
            raise CheckpointError(f"malformed checkpoint line: {line[:100]!r}")
        heads.append(ChainHead(parts[1], int(parts[2]), parts[3]))
    # The signature already vouches for these; recomputing them catches a signer's bug.
    if base64.b64encode(merkle_root([h.leaf() for h in heads])).decode() != root:
        raise CheckpointError("malformed checkpoint: the root hash does not match its chains")
    if size != str(sum(h.size for h in heads)):
        raise CheckpointError("malformed checkpoint: the size does not match its chains")
    return time, tuple(heads)


def _registered_keys(hint: bytes) -> list[ec.EllipticCurvePublicKey]:
    rows = SigningKey.objects.filter(keyid__startswith=hint.hex()).values_list("keyid", flat=True)
    found = (keys.public_key_by_id(keyid) for keyid in rows)
    return [key for key in found if key is not None]


def read_checkpoint(content: str, *, public_pem: str | None = None) -> Checkpoint:
    """Parse a checkpoint and check its signature, with `public_pem` or else with a key
    releasegate has registered. Raises CheckpointError naming what is wrong."""
    text, blank, signatures = content.partition("\n\n")
    if not blank:
        raise CheckpointError("malformed checkpoint: no blank line before the signature")
    text += "\n"
    ours = [
        line.split(" ", 2)[2]
        for line in signatures.splitlines()
        if line.startswith(f"{_DASH} {ORIGIN} ") and line.count(" ") == 2
    ]
    if not ours:
        raise CheckpointError(f"the checkpoint carries no signature by {ORIGIN}")
    if not text.startswith(ORIGIN + "\n"):
        raise CheckpointError(
            f"not a releasegate audit checkpoint (the first line is not {ORIGIN})"
        )
    given: list[ec.EllipticCurvePublicKey] = []
    if public_pem is not None:
        try:
            given = [keys.load_public_pem(public_pem)]
        except keys.SigningKeyError as exc:
            raise CheckpointError(f"the key given is {exc}") from None
    known = False
    for blob in ours:
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError:
            raise CheckpointError("malformed checkpoint: the signature is not base64") from None
        hint, signature = raw[:4], raw[4:]
        candidates = given if public_pem is not None else _registered_keys(hint)
        known = known or bool(candidates)
        if any(keys.verify(key, text.encode(), signature) for key in candidates):
            time, heads = _parse_body(text)
            return Checkpoint(time=time, heads=heads, keyid_hint=hint.hex())
    if not known:
        raise CheckpointError(
            f"the checkpoint is signed by an unknown key (id {raw[:4].hex()}…): not a key "
            "releasegate has signed with; give its public key with --key"
        )
    raise CheckpointError(
        "bad signature: the checkpoint was altered, or not signed by "
        + ("the key given" if public_pem is not None else "releasegate's key")
    )


def extension_problems(checkpoint: Checkpoint) -> list[str]:
    """What keeps the current log from extending the checkpoint, per chain; empty if it does.

    Run after `verify_trail` found every chain intact: then a chain whose event #size has the
    checkpoint's head hash holds, before it, exactly the events the checkpoint saw.
    """
    rows = {
        c.name: c for c in AuditChain.objects.filter(name__in=[h.name for h in checkpoint.heads])
    }
    problems = []
    for seen in checkpoint.heads:
        chain = rows.get(seen.name)
        if chain is None:
            problems.append(f"chain {seen.name} is gone, the checkpoint saw {seen.size} events")
            continue
        present = AuditEvent.objects.filter(chain=chain, seq__lte=seen.size).count()
        if chain.size < seen.size or present < seen.size:
            problems.append(
                f"chain {seen.name} has {min(chain.size, present)} events, the checkpoint saw "
                f"{seen.size}"
            )
            continue
        if seen.size == 0:
            continue
        event = AuditEvent.objects.filter(chain=chain, seq=seen.size).first()
        if event is None or event.hash != seen.head_hash:
            problems.append(
                f"chain {seen.name} was rewritten: event #{seen.size} is not the one the "
                "checkpoint saw (its hash differs), so it or an event before it changed"
            )
    return problems


def _event_entry(event: dict[str, Any]) -> str:
    fields = {name: event[name] for name in HASHED_FIELDS}
    fields["created_at"] = parse_datetime(str(event["created_at"]))
    if fields["created_at"] is None:
        raise ValueError("created_at")
    return entry_hash(AuditEvent(**fields), chain=event["chain"])


def export_problems(document: dict[str, Any], checkpoint: Checkpoint) -> tuple[int, list[str]]:
    """Check a release's exported trail against a checkpoint, with no database: recompute each
    event's hashes and walk the proof's entry hashes from the first event to the checkpoint's
    head of that chain. Returns how many events the checkpoint vouches for, and what fails."""
    try:
        events = {int(e["seq"]): e for e in document["events"]}
        proof = document["proof"]
        chain, from_seq = str(proof["chain"]), int(proof["from_seq"])
        entries = [str(h) for h in proof["entry_hashes"]]
        link = str(document["events"][0]["prev_hash"]) if events else ""
    except (KeyError, TypeError, ValueError, IndexError):
        return 0, ["not a release's audit export (events and proof expected)"]
    seen = next((h for h in checkpoint.heads if h.name == chain), None)
    if seen is None:
        return 0, [f"the checkpoint has no chain {chain}"]
    if seen.size < from_seq:
        return 0, [f"the checkpoint (chain {chain} at #{seen.size}) predates event #{from_seq}"]
    if from_seq + len(entries) - 1 < seen.size:
        return 0, [f"the proof stops at #{from_seq + len(entries) - 1}, before #{seen.size}"]
    for seq, entry in enumerate(entries[: seen.size - from_seq + 1], start=from_seq):
        event = events.get(seq)
        if event is not None:
            try:
                recomputed = _event_entry(event)
            except (KeyError, TypeError, ValueError):
                return 0, [f"event #{seq} lacks a field its hash covers"]
            if event.get("chain") != chain or recomputed != entry or event["entry_hash"] != entry:
                return 0, [f"event #{seq} ({event.get('action')}) was altered"]
            if event["prev_hash"] != link:
                return 0, [f"event #{seq} does not chain to event #{seq - 1}"]
        link = link_hash(link, entry)
        if event is not None and event["hash"] != link:
            return 0, [f"event #{seq} ({event.get('action')}) was altered"]
    if link != seen.head_hash:
        return 0, [
            f"the trail does not lead to the checkpoint's head of chain {chain} (#{seen.size}): "
            "an event or the proof was altered"
        ]
    return sum(1 for seq in events if seq <= seen.size), []
