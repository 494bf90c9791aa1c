"""Importing OSV advisories offline, from a folder or a zip of OSV JSON documents.

Idempotent: each advisory is keyed by its OSV id and carries a digest of its canonical document,
so importing the same files again writes nothing, and a changed advisory replaces its rows.
"""

import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils.dateparse import parse_datetime

from releasegate.checks.invalidation import check_results_invalidate
from releasegate.checks.models import Advisory, AffectedPackage
from releasegate.checks.osv import (
    advisory_severity,
    affected_severity,
    base_ecosystem,
    normalize_name,
)

BATCH = 2000


@dataclass
class ImportReport:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)  # "file: why"


def _documents(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        for file in sorted(path.rglob("*.json")):
            yield str(file.relative_to(path)), file.read_bytes()
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in sorted(archive.namelist()):
                if name.endswith(".json"):
                    yield name, archive.read(name)
    else:
        raise ValueError(f"{path} is neither a folder nor a zip file")


def _when(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else None


def _rows(document: dict[str, Any]) -> tuple[Advisory, list[AffectedPackage]]:
    advisory = Advisory(
        osv_id=document["id"],
        aliases=[a for a in document.get("aliases") or [] if isinstance(a, str)],
        summary=str(document.get("summary") or document.get("details") or "")[:500],
        severity=advisory_severity(document),
        modified=_when(document.get("modified")),
        withdrawn=_when(document.get("withdrawn")),
    )
    affected = []
    for entry in document.get("affected") or []:
        package = entry.get("package") or {}
        ecosystem = base_ecosystem(str(package.get("ecosystem", "")))
        name = package.get("name")
        if not ecosystem or not isinstance(name, str):
            continue
        affected.append(
            AffectedPackage(
                ecosystem=ecosystem,
                name=normalize_name(ecosystem, name),
                ranges=[r for r in entry.get("ranges") or [] if isinstance(r, dict)],
                versions=[str(v) for v in entry.get("versions") or []],
                severity=affected_severity(entry),
            )
        )
    return advisory, affected


def _flush(batch: list[tuple[Advisory, list[AffectedPackage]]], existing: dict[str, int]) -> None:
    replaced = [existing[a.osv_id] for a, _ in batch if a.osv_id in existing]
    if replaced:
        Advisory.objects.filter(pk__in=replaced).delete()
    Advisory.objects.bulk_create([a for a, _ in batch], batch_size=BATCH)
    packages = []
    for advisory, affected in batch:
        for row in affected:
            row.advisory = advisory
            packages.append(row)
    AffectedPackage.objects.bulk_create(packages, batch_size=BATCH)


def advisories_import(*, path: Path) -> ImportReport:
    """Import every OSV document under `path` (a folder, searched recursively, or a zip)."""
    report = ImportReport()
    known = {
        osv_id: (pk, digest)
        for osv_id, pk, digest in Advisory.objects.values_list("osv_id", "pk", "content_digest")
    }
    batch: list[tuple[Advisory, list[AffectedPackage]]] = []
    existing: dict[str, int] = {}
    seen: set[str] = set()
    with transaction.atomic():
        for name, raw in _documents(path):
            report.read += 1
            try:
                document = json.loads(raw)
            except ValueError as exc:
                report.skipped.append(f"{name}: not JSON ({exc})")
                continue
            if not isinstance(document, dict) or not isinstance(document.get("id"), str):
                report.skipped.append(f"{name}: not an OSV advisory (no id)")
                continue
            osv_id = document["id"]
            if osv_id in seen:
                report.skipped.append(f"{name}: {osv_id} appears twice; the first one was kept")
                continue
            seen.add(osv_id)
            digest = hashlib.sha256(
                json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
            ).hexdigest()
            if osv_id in known and known[osv_id][1] == digest:
                report.unchanged += 1
                continue
            advisory, affected = _rows(document)
            advisory.content_digest = digest
            if osv_id in known:
                existing[osv_id] = known[osv_id][0]
                report.updated += 1
            else:
                report.created += 1
            batch.append((advisory, affected))
            if len(batch) >= BATCH:
                _flush(batch, existing)
                batch = []
        if batch:
            _flush(batch, existing)
        if report.created or report.updated:
            # New knowledge about vulnerabilities: releases in review are checked again.
            check_results_invalidate(project_id=None, check="vulnerabilities")
    return report
