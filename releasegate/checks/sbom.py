"""Reading an SBOM (CycloneDX 1.2-1.6 JSON or SPDX 2.2/2.3 JSON): its schema problems and its
components, whichever format it is in.

CycloneDX documents are validated against the official CycloneDX JSON schemas that
cyclonedx-python-lib ships (with their SPDX license-id, JSF and cryptography sub-schemas), using
jsonschema-rs: cyclonedx-python-lib's own validator checks `iri-reference` formats with an Earley
parser at ~70 ms per URL, 6 s for a 62-component SBOM, where jsonschema-rs takes milliseconds.
SPDX documents go through spdx-tools' parser and full-document validator.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from cyclonedx.schema import SchemaVersion
from cyclonedx.schema._res import BOM_JSON, CRYPTOGRAPHY_DEFS, JSF, SPDX_JSON
from spdx_tools.spdx.parser.error import SPDXParsingError
from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

CYCLONEDX_VERSIONS = ("1.2", "1.3", "1.4", "1.5", "1.6")
SPDX_VERSIONS = ("SPDX-2.2", "SPDX-2.3")
ML_TYPES = ("machine-learning-model", "data")
MAX_PROBLEMS = 50


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    purl: str
    licenses: tuple[str, ...]  # SPDX ids, names or expressions, as the SBOM states them
    type: str = "library"


@dataclass
class SbomReport:
    format: str  # "CycloneDX 1.5", "SPDX-2.3", or "unknown"
    problems: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    component_count: int = 0
    ml_components: list[dict[str, Any]] = field(default_factory=list)


def _list(value: Any) -> list[Any]:
    """A field that should be an array, or nothing: the shape is reported by the schema
    validation, never by a TypeError here."""
    return value if isinstance(value, list) else []


def _text(value: Any, default: str = "") -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return default


def sbom_format(document: dict[str, Any]) -> str:
    if document.get("bomFormat") == "CycloneDX":
        return "cyclonedx"
    if "spdxVersion" in document:
        return "spdx"
    return "unknown"


@cache
def _cyclonedx_side_schemas() -> dict[str, Any]:
    side: dict[str, Any] = {}
    for path in (SPDX_JSON, JSF, CRYPTOGRAPHY_DEFS):
        with open(path, encoding="utf-8") as file:
            schema = json.load(file)
        side[Path(path).name] = schema
        if "$id" in schema:
            side[schema["$id"]] = schema
    return side


def _retrieve(uri: str) -> Any:
    side = _cyclonedx_side_schemas()
    return side.get(uri) or side[uri.rsplit("/", 1)[-1]]


@cache
def _cyclonedx_validator(spec: str) -> Any:
    path = BOM_JSON[SchemaVersion.from_version(spec)]
    if path is None:
        raise ValueError(f"cyclonedx-python-lib ships no JSON schema for CycloneDX {spec}")
    with open(path, encoding="utf-8") as file:
        schema = json.load(file)
    return jsonschema_rs.validator_for(schema, retriever=_retrieve, validate_formats=True)


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def _cyclonedx_problems(document: dict[str, Any]) -> list[dict[str, str]]:
    problems = []
    for error in _cyclonedx_validator(document["specVersion"]).iter_errors(document):
        problems.append({"where": _where(error.instance_path), "problem": error.message[:300]})
        if len(problems) >= 1000:
            break
    return sorted(problems, key=lambda p: p["where"])


def cyclonedx_components(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every component, nested ones included (the product itself, metadata.component, is not)."""
    stack = list(reversed(_list(document.get("components"))))
    while stack:
        component = stack.pop()
        if not isinstance(component, dict):
            continue
        yield component
        stack.extend(reversed(_list(component.get("components"))))


def _cyclonedx_licenses(component: dict[str, Any]) -> tuple[str, ...]:
    out = []
    for entry in _list(component.get("licenses")):
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("expression"), str):
            out.append(entry["expression"])
        elif isinstance(entry.get("license"), dict):
            lic = entry["license"]
            value = lic.get("id") or lic.get("name")
            if isinstance(value, str):
                out.append(value)
    return tuple(out)


def _spdx_purl(package: dict[str, Any]) -> str:
    for ref in _list(package.get("externalRefs")):
        if isinstance(ref, dict) and ref.get("referenceType") == "purl":
            return _text(ref.get("referenceLocator"))
    return ""


def _spdx_licenses(package: dict[str, Any]) -> tuple[str, ...]:
    for key in ("licenseConcluded", "licenseDeclared"):
        value = package.get(key)
        if isinstance(value, str) and value not in {"NOASSERTION", "NONE", ""}:
            return (value,)
    return ()


def components(document: dict[str, Any]) -> list[Component]:
    """The SBOM's components with what the checks need, in document order."""
    if sbom_format(document) == "cyclonedx":
        return [
            Component(
                name=_text(c.get("name")),
                version=_text(c.get("version")),
                purl=_text(c.get("purl")),
                licenses=_cyclonedx_licenses(c),
                type=_text(c.get("type"), "library"),
            )
            for c in cyclonedx_components(document)
        ]
    if sbom_format(document) == "spdx":
        return [
            Component(
                name=_text(p.get("name")),
                version=_text(p.get("versionInfo")),
                purl=_spdx_purl(p),
                licenses=_spdx_licenses(p),
            )
            for p in _list(document.get("packages"))
            if isinstance(p, dict)
        ]
    return []


def _ml_component_notes(document: dict[str, Any], report: SbomReport) -> None:
    for component in cyclonedx_components(document):
        kind = component.get("type")
        if kind not in ML_TYPES:
            continue
        entry = {"name": _text(component.get("name")), "type": kind}
        if kind == "machine-learning-model":
            entry["model_card"] = isinstance(component.get("modelCard"), dict)
            if not entry["model_card"]:
                report.notes.append(f"model {component.get('name')!r} has no modelCard")
        report.ml_components.append(entry)


def _spdx_problems(document: dict[str, Any]) -> list[dict[str, str]]:
    try:
        parsed = JsonLikeDictParser().parse(document)
    except SPDXParsingError as exc:
        return [{"where": "(document)", "problem": m[:300]} for m in exc.get_messages()]
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        # spdx-tools reads fields without checking their JSON type first; a wrong shape is a
        # problem of the document, not of the check.
        return [{"where": "(document)", "problem": f"not readable as SPDX: {exc}"[:300]}]
    return [
        {
            "where": (m.context.spdx_id or m.context.parent_id or "(document)")
            if m.context
            else "",
            "problem": m.validation_message[:300],
        }
        for m in validate_full_spdx_document(parsed)
    ]


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:40])
    if value is None:
        return "a missing version"
    return "a JSON array" if isinstance(value, list) else "a JSON object or other value"


def inspect_sbom(document: Any) -> SbomReport:
    """Validate an SBOM against its format's official schema; report every problem found."""
    if not isinstance(document, dict):
        return SbomReport("unknown", [{"where": "(document)", "problem": "not a JSON object"}])
    kind = sbom_format(document)
    if kind == "cyclonedx":
        spec = document.get("specVersion")
        if not isinstance(spec, str) or spec not in CYCLONEDX_VERSIONS:
            return SbomReport(
                "CycloneDX",
                [
                    {
                        "where": "specVersion",
                        "problem": f"{_shown(spec)} is not CycloneDX 1.2 to 1.6",
                    }
                ],
            )
        report = SbomReport(f"CycloneDX {spec}", _cyclonedx_problems(document))
        _ml_component_notes(document, report)
    elif kind == "spdx":
        version = document.get("spdxVersion")
        if not isinstance(version, str) or version not in SPDX_VERSIONS:
            return SbomReport(
                "SPDX",
                [
                    {
                        "where": "spdxVersion",
                        "problem": f"{_shown(version)} is not SPDX-2.2 or SPDX-2.3",
                    }
                ],
            )
        report = SbomReport(str(version), _spdx_problems(document))
    else:
        return SbomReport(
            "unknown",
            [{"where": "(document)", "problem": "neither CycloneDX JSON nor SPDX JSON"}],
        )
    report.component_count = len(components(document))
    return report
