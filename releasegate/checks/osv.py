"""OSV semantics: ecosystems and package names, version ordering, affected ranges, severity.

Version ordering comes from `univers` (nexB), which implements each ecosystem's own rules
(PEP 440 for PyPI, Maven's ComparableVersion, SemVer 2.0 pre-releases for npm, crates.io and Go).
Range semantics follow the OSV schema: events sorted by version, `introduced: "0"` before all,
`fixed` excluded, `last_affected` included, explicit `versions` matched as listed.
"""

import re
from collections.abc import Iterable, Sequence
from functools import cmp_to_key, lru_cache
from typing import Any

from cvss import CVSS2, CVSS3, CVSS4
from packageurl import PackageURL
from univers.versions import (
    ComposerVersion,
    GenericVersion,
    MavenVersion,
    NugetVersion,
    PypiVersion,
    RubygemsVersion,
    SemverVersion,
    Version,
)

SEVERITY_ORDER = ("low", "medium", "high", "critical")
# What counts when an advisory names no severity: high (docs/checks.md), failing closed.
UNKNOWN_SEVERITY = "high"

# purl type -> OSV ecosystem name.
PURL_ECOSYSTEMS = {
    "pypi": "PyPI",
    "npm": "npm",
    "maven": "Maven",
    "golang": "Go",
    "cargo": "crates.io",
    "gem": "RubyGems",
    "nuget": "NuGet",
    "composer": "Packagist",
}

_ECOSYSTEM_VERSIONS: dict[str, type[Version]] = {
    "PyPI": PypiVersion,
    "npm": SemverVersion,
    "Maven": MavenVersion,
    "Go": SemverVersion,
    "crates.io": SemverVersion,
    "RubyGems": RubygemsVersion,
    "NuGet": NugetVersion,
    "Packagist": ComposerVersion,
}

_GITHUB_SEVERITIES = {
    "low": "low",
    "moderate": "medium",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
    "important": "high",
}


def base_ecosystem(ecosystem: str) -> str:
    """`Debian:11` and `Maven:https://repo...` are variants of their base ecosystem."""
    return ecosystem.split(":", 1)[0]


def normalize_name(ecosystem: str, name: str) -> str:
    """Package names as both OSV and purls spell them, folded the way each registry does."""
    if ecosystem == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()
    if ecosystem in {"npm", "crates.io", "NuGet", "Packagist", "RubyGems"}:
        return name.lower()
    return name


@lru_cache(maxsize=100_000)
def purl_package(purl: str) -> tuple[str, str, str] | None:
    """(OSV ecosystem, normalized name, version) for a purl we can match, else None."""
    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        return None
    ecosystem = PURL_ECOSYSTEMS.get(parsed.type)
    if ecosystem is None or not parsed.version:
        return None
    if ecosystem == "Maven":
        name = f"{parsed.namespace}:{parsed.name}" if parsed.namespace else parsed.name
    elif parsed.namespace:
        name = f"{parsed.namespace}/{parsed.name}"
    else:
        name = parsed.name
    return ecosystem, normalize_name(ecosystem, name), parsed.version


def _strip_v(ecosystem: str, version: str) -> str:
    # Go modules are versioned v1.2.3 in purls and go.mod; OSV writes 1.2.3.
    if ecosystem == "Go" and version.startswith("v"):
        return version[1:]
    return version


@lru_cache(maxsize=200_000)
def parse_version(ecosystem: str, range_type: str, version: str) -> Version | None:
    """The version as its ecosystem orders it, or None when it does not parse."""
    cls = (
        SemverVersion
        if range_type == "SEMVER"
        else _ECOSYSTEM_VERSIONS.get(ecosystem, GenericVersion)
    )
    try:
        return cls(_strip_v(ecosystem, version))
    except Exception:  # univers raises several types (InvalidVersion, ValueError, TypeError)
        return None


class NotComparable(Exception):
    """A version or event in a range that the ecosystem's ordering cannot place."""


_EVENT_RANK = {"introduced": 0, "last_affected": 1, "fixed": 2}


def _event_order(a: tuple[Version | None, str], b: tuple[Version | None, str]) -> int:
    """`introduced: 0` first; then by version; at an equal version, an introduction before the
    last_affected or fix that closes it."""
    if (a[0] is None) != (b[0] is None):
        return -1 if a[0] is None else 1
    if a[0] is not None and b[0] is not None and a[0] != b[0]:
        return -1 if a[0] < b[0] else 1
    return _EVENT_RANK[a[1]] - _EVENT_RANK[b[1]]


def _in_range(ecosystem: str, range_: dict[str, Any], version: Version) -> bool:
    range_type = range_.get("type", "ECOSYSTEM")
    events: list[tuple[Version | None, str]] = []
    for event in range_.get("events") or []:
        for kind in _EVENT_RANK:
            if kind not in event:
                continue
            value = str(event[kind])
            if kind == "introduced" and value == "0":
                events.append((None, kind))
                continue
            parsed = parse_version(ecosystem, range_type, value)
            if parsed is None:
                raise NotComparable(f"{kind} {value!r}")
            events.append((parsed, kind))
    affected = False
    for at, kind in sorted(events, key=cmp_to_key(_event_order)):
        if kind == "introduced" and (at is None or version >= at):
            affected = True
        elif at is not None and (
            (kind == "fixed" and version >= at) or (kind == "last_affected" and version > at)
        ):
            affected = False
    return affected


def is_affected(
    ecosystem: str, version: str, ranges: Sequence[dict[str, Any]], versions: Iterable[str]
) -> bool:
    """Whether `version` of a package is affected by one OSV `affected[]` entry.

    An explicit `versions` list matches as listed; ECOSYSTEM and SEMVER ranges are evaluated;
    GIT ranges name commits, not releases, so only their enumerated `versions` can match.
    Raises NotComparable when the component's version cannot be ordered.
    """
    plain = _strip_v(ecosystem, version)
    if plain in versions or version in versions:
        return True
    comparable = [r for r in ranges if r.get("type") in {"ECOSYSTEM", "SEMVER"}]
    if not comparable:
        return False
    problems = []
    for range_ in comparable:
        parsed = parse_version(ecosystem, range_.get("type", "ECOSYSTEM"), version)
        if parsed is None:
            raise NotComparable(f"version {version!r}")
        try:
            if _in_range(ecosystem, range_, parsed):
                return True
        except NotComparable as exc:
            problems.append(str(exc))
    if problems and len(problems) == len(comparable):
        raise NotComparable("; ".join(problems))
    return False


def fixed_versions(ecosystem: str, version: str, ranges: Sequence[dict[str, Any]]) -> list[str]:
    """The versions that fix `version` of a package: in each ECOSYSTEM or SEMVER range that
    affects it, the first `fixed` event after it (the end of the interval it falls in), in
    ascending order. Empty when no such range names a fix (there may be none yet)."""
    found: dict[str, Version] = {}
    for range_ in ranges:
        range_type = range_.get("type", "ECOSYSTEM")
        if range_type not in {"ECOSYSTEM", "SEMVER"}:
            continue
        current = parse_version(ecosystem, range_type, version)
        try:
            if current is None or not _in_range(ecosystem, range_, current):
                continue
        except NotComparable:
            continue
        later = []
        for event in range_.get("events") or []:
            fixed = event.get("fixed") if isinstance(event, dict) else None
            parsed = parse_version(ecosystem, range_type, str(fixed)) if fixed else None
            if parsed is not None and parsed > current:
                later.append((parsed, str(fixed)))
        if later:
            parsed, text = min(later, key=lambda pair: pair[0])
            found.setdefault(text, parsed)
    return [text for text, _ in sorted(found.items(), key=lambda pair: pair[1])]


def _cvss_severity(kind: str, vector: str) -> str | None:
    scorer = {"CVSS_V2": CVSS2, "CVSS_V3": CVSS3, "CVSS_V4": CVSS4}.get(kind)
    if scorer is None:
        return None
    try:
        score = float(scorer(vector).base_score)
    except Exception:  # the cvss library raises its own errors for malformed vectors
        return None
    # The CVSS v3/v4 qualitative scale (FIRST); a score of 0.0 ("none") is reported as low.
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


def text_severity(value: Any) -> str | None:
    if isinstance(value, str):
        return _GITHUB_SEVERITIES.get(value.strip().lower())
    return None


def advisory_severity(document: dict[str, Any]) -> str:
    """database_specific.severity, else the highest CVSS base score; empty when neither is given."""
    found = text_severity((document.get("database_specific") or {}).get("severity"))
    if found:
        return found
    scored = [
        _cvss_severity(str(s.get("type")), str(s.get("score")))
        for s in document.get("severity") or []
        if isinstance(s, dict)
    ]
    return max((s for s in scored if s), key=SEVERITY_ORDER.index, default="")


def affected_severity(entry: dict[str, Any]) -> str:
    """A package-level severity (ecosystem_specific or database_specific, or CVSS on the entry)."""
    for key in ("ecosystem_specific", "database_specific"):
        found = text_severity((entry.get(key) or {}).get("severity"))
        if found:
            return found
    scored = [
        _cvss_severity(str(s.get("type")), str(s.get("score")))
        for s in entry.get("severity") or []
        if isinstance(s, dict)
    ]
    return max((s for s in scored if s), key=SEVERITY_ORDER.index, default="")


def at_or_above(severity: str, threshold: str) -> bool:
    return SEVERITY_ORDER.index(severity or UNKNOWN_SEVERITY) >= SEVERITY_ORDER.index(threshold)
