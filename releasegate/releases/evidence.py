"""The structured evidence documents and their schemas (docs/evidence.md has an example of each).

`validate_document` returns every problem with where it is (`findings[0].severity`), so a caller
can say exactly what to fix. An SBOM is checked here only for its shape (CycloneDX 1.2-1.6 or
SPDX 2.2/2.3 JSON); the `sbom_valid` check validates it against the official schema.
"""

import hashlib
import json
from collections.abc import Iterable
from datetime import date
from typing import Any

from django.utils import timezone
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from releasegate.errors import FieldError
from releasegate.releases.models import EvidenceKind

_TEXT = {"type": "string", "minLength": 1, "maxLength": 2000}
CYCLONEDX_VERSIONS = ("1.2", "1.3", "1.4", "1.5", "1.6")
SPDX_VERSIONS = ("SPDX-2.2", "SPDX-2.3")
_SHORT = {"type": "string", "minLength": 1, "maxLength": 300}

SCHEMAS: dict[str, dict[str, Any]] = {
    EvidenceKind.PIPELINE_REVIEW: {
        "type": "object",
        "required": ["reviewer", "reviewed_at", "scope", "findings"],
        "additionalProperties": True,
        "properties": {
            "reviewer": _SHORT,
            "reviewed_at": {"type": "string", "format": "date"},
            "scope": {"type": "array", "minItems": 1, "items": _SHORT},
            "findings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "severity", "title", "status"],
                    "properties": {
                        "id": _SHORT,
                        "severity": {"enum": ["low", "medium", "high", "critical"]},
                        "title": _TEXT,
                        "status": {"enum": ["open", "mitigated", "accepted"]},
                    },
                },
            },
        },
    },
    EvidenceKind.DATA_FLOW_MAP: {
        "type": "object",
        "required": ["flows"],
        "properties": {
            "flows": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": [
                        "source",
                        "destination",
                        "data_classes",
                        "third_party",
                        "customer_data",
                        "cached",
                    ],
                    "properties": {
                        "source": _SHORT,
                        "destination": _SHORT,
                        "data_classes": {"type": "array", "items": _SHORT},
                        "third_party": {"type": "boolean"},
                        "customer_data": {"enum": ["real", "synthetic", "none"]},
                        "cached": {"type": "boolean"},
                        "agreement_ref": {"type": ["string", "null"], "maxLength": 300},
                    },
                },
            }
        },
    },
    EvidenceKind.MONITORING_PLAN: {
        "type": "object",
        "required": ["owner", "escalation", "signals"],
        "properties": {
            "owner": _SHORT,
            "escalation": _TEXT,
            "signals": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "kind", "threshold", "runbook"],
                    "properties": {
                        "name": _SHORT,
                        "kind": {
                            "enum": [
                                "output_anomaly",
                                "data_exposure",
                                "drift",
                                "abuse",
                                "latency",
                                "cost",
                            ]
                        },
                        "threshold": _SHORT,
                        "runbook": {"type": "string", "pattern": "^https?://", "maxLength": 500},
                    },
                },
            },
        },
    },
    EvidenceKind.AGENT_ACCESS_REVIEW: {
        "type": "object",
        "required": ["identities"],
        "properties": {
            "identities": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "kind", "permissions", "resources", "auth"],
                    "properties": {
                        "name": _SHORT,
                        "kind": {"enum": ["agent", "service_account", "mcp_server", "tool"]},
                        "permissions": {
                            "type": "array",
                            "items": {"enum": ["read", "edit", "write", "admin"]},
                        },
                        "resources": {"type": "array", "items": _SHORT},
                        "auth": {"enum": ["oauth", "token", "mtls", "none"]},
                        "justification": {"type": ["string", "null"], "maxLength": 2000},
                    },
                },
            }
        },
    },
    EvidenceKind.SBOM: {
        "type": "object",
        "oneOf": [
            {
                "title": "CycloneDX",
                "required": ["bomFormat", "specVersion"],
                "properties": {
                    "bomFormat": {"const": "CycloneDX"},
                    "specVersion": {"enum": list(CYCLONEDX_VERSIONS)},
                    "components": {
                        "type": "array",
                        "items": {"type": "object", "required": ["name"]},
                    },
                },
            },
            {
                "title": "SPDX",
                "required": ["spdxVersion", "SPDXID"],
                "properties": {
                    "spdxVersion": {"enum": list(SPDX_VERSIONS)},
                    "packages": {
                        "type": "array",
                        "items": {"type": "object", "required": ["name"]},
                    },
                },
            },
        ],
    },
}

_FORMATS = FormatChecker(formats=["date"])
_VALIDATORS = {
    kind: Draft202012Validator(schema, format_checker=_FORMATS) for kind, schema in SCHEMAS.items()
}


def _path(error_path: Iterable[str | int]) -> str:
    out = ""
    for part in error_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


_JSON_TYPES = {list: "array", dict: "object", int: "number", float: "number", bool: "boolean"}


def _version_problem(document: dict[str, Any], key: str, supported: tuple[str, ...]) -> str | None:
    """What is wrong with the SBOM's format version, if anything. Checked by type first: a list or
    an object there is a 400 that says so, never a lookup that raises."""
    value = document.get(key)
    if not isinstance(value, str):
        kind = "missing" if value is None else f"a JSON {_JSON_TYPES.get(type(value), 'value')}"
        return f"must be a string, one of {', '.join(supported)} (it is {kind})"
    if value not in supported:
        return f"{value[:40]!r} is not supported ({', '.join(supported)})"
    return None


def _sbom_problem(document: dict[str, Any]) -> list[FieldError]:
    if document.get("bomFormat") == "CycloneDX" or "specVersion" in document:
        problem = _version_problem(document, "specVersion", CYCLONEDX_VERSIONS)
        if problem:
            return [FieldError("specVersion", f"CycloneDX: {problem}")]
        validator = Draft202012Validator(SCHEMAS[EvidenceKind.SBOM]["oneOf"][0])
    elif "spdxVersion" in document or "SPDXID" in document:
        problem = _version_problem(document, "spdxVersion", SPDX_VERSIONS)
        if problem:
            return [FieldError("spdxVersion", f"SPDX: {problem}")]
        validator = Draft202012Validator(SCHEMAS[EvidenceKind.SBOM]["oneOf"][1])
    else:
        return [
            FieldError(
                "(document)",
                "not an SBOM: expected CycloneDX JSON (bomFormat, specVersion) "
                "or SPDX JSON (spdxVersion, SPDXID)",
            )
        ]
    return _errors(validator.iter_errors(document))


def _errors(errors: Iterable[ValidationError]) -> list[FieldError]:
    found = sorted(errors, key=lambda e: list(map(str, e.absolute_path)))
    return [FieldError(_path(e.absolute_path), e.message) for e in found[:50]]


def validate_document(kind: str, document: Any) -> list[FieldError]:
    """Every problem with an evidence document of this kind; empty when it is valid."""
    if kind not in SCHEMAS:
        return [FieldError("kind", f"unknown evidence kind {kind!r}")]
    if not isinstance(document, dict):
        return [FieldError("(document)", "must be a JSON object")]
    if kind == EvidenceKind.SBOM:
        return _sbom_problem(document)
    problems = _errors(_VALIDATORS[kind].iter_errors(document))
    # Today in UTC, as the gate reckons a review's age.
    if (
        not problems
        and kind == EvidenceKind.PIPELINE_REVIEW
        and date.fromisoformat(document["reviewed_at"]) > timezone.now().date()
    ):
        problems.append(FieldError("reviewed_at", "a review cannot be dated in the future"))
    return problems


def canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def evidence_digest(*, document: Any, attachment_digest: str = "", link: str = "") -> str:
    """sha256 over the canonical document and what is attached: any change is a new digest."""
    h = hashlib.sha256(canonical_json(document))
    h.update(b"\x00attachment:" + attachment_digest.encode())
    h.update(b"\x00link:" + link.encode())
    return f"sha256:{h.hexdigest()}"


def manifest_digest(*, artifact_digest: str, evidence: dict[str, str]) -> str:
    """A digest over the artifact digest and every current evidence digest (by kind)."""
    lines = [f"artifact {artifact_digest}"] + [
        f"{kind} {evidence[kind]}" for kind in sorted(evidence)
    ]
    body = "releasegate-manifest-v1\n" + "\n".join(lines)
    return f"sha256:{hashlib.sha256(body.encode()).hexdigest()}"
