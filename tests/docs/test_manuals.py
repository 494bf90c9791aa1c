"""The manuals say what the code does: every setting the code reads is documented, and every
evidence example in docs/evidence.md is a document the service accepts."""

import json
import re
from pathlib import Path

import pytest

from releasegate.releases.evidence import validate_document

ROOT = Path(__file__).resolve().parents[2]
READERS = (
    r"(?:env_str|env_bool|env_int|env_list|env_token_origins|database_from_url"
    r"|os\.environ\.get|getenv)"
)


def _settings_read() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "releasegate").rglob("*.py"):
        text = path.read_text()
        names |= set(re.findall(READERS + r"\(\s*\"([A-Z][A-Z0-9_]+)\"", text))
    return names


def test_every_setting_read_from_the_environment_is_in_the_operations_manual():
    documented = (ROOT / "docs" / "operations.md").read_text()
    missing = sorted(n for n in _settings_read() if f"`{n}`" not in documented)
    assert not missing, f"settings read but not documented in docs/operations.md: {missing}"


def _examples() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "evidence.md").read_text()
    return re.findall(r"## `([a-z_]+)`.*?```json\n(.*?)```", text, flags=re.S)


def test_the_evidence_manual_has_one_example_per_kind():
    from releasegate.releases.models import EvidenceKind

    assert sorted(kind for kind, _ in _examples()) == sorted(EvidenceKind.values)


@pytest.mark.parametrize("kind,example", _examples())
def test_each_evidence_example_is_accepted_as_written(kind, example):
    assert validate_document(kind, json.loads(example)) == []
