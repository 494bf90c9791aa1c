"""Fuzzing the identifiers the gate is asked about (issue 10, item 2): a digest, version,
environment or project slug with a control character, a trailing newline, a Unicode look-alike,
another case or too many characters is a 4xx naming the field, and nothing is stored. Runs on
whichever database the suite runs on (PostgreSQL in CI, SQLite on the embedded default)."""

from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from releasegate.releases.identifiers import DIGEST_RE, ENVIRONMENT_RE, SLUG_RE, VERSION_RE
from tests.api.conftest import Caller
from tests.releases.gatehelpers import snapshot

HEX = "c0ffee" * 10 + "abcd"
VALID = {
    "project": "support-assistant",
    "version": "7.0.1",
    "artifact_digest": f"sha256:{HEX}",
    "environment": "production",
}
PATTERNS = {
    "project": SLUG_RE,
    "version": VERSION_RE,
    "artifact_digest": DIGEST_RE,
    "environment": ENVIRONMENT_RE,
}
# Characters that look like or stand in for the ASCII ones the patterns allow.
LOOK_ALIKES = {
    "a": "\u0430",  # Cyrillic a
    "e": "\u0435",  # Cyrillic e
    "o": "\u03bf",  # Greek omicron
    "c": "\u0441",  # Cyrillic es
    "0": "\uff10",  # fullwidth zero
    "1": "\u0661",  # Arabic-Indic one
    "7": "\U0001d7d5",  # mathematical bold seven
    "-": "\u2010",  # hyphen
    ".": "\u2024",  # one dot leader
    ":": "\u2236",  # ratio
}
CONTROL = st.sampled_from(["\n", "\r", "\t", "\x0b", "\x0c", "\x1b", "\x7f", "\u0085", "\u2028"])


@st.composite
def corrupted(draw: Any, field: str) -> str:
    value = VALID[field]
    how = draw(st.sampled_from(["append", "prepend", "insert", "look_alike", "case", "long"]))
    if how == "append":
        bad = value + draw(CONTROL)
    elif how == "prepend":
        bad = draw(st.sampled_from([" ", "\n", "\ufeff"])) + value
    elif how == "insert":
        at = draw(st.integers(min_value=1, max_value=len(value) - 1))
        bad = value[:at] + draw(CONTROL | st.just("\x00") | st.just("\u200b")) + value[at:]
    elif how == "look_alike":
        swappable = [i for i, ch in enumerate(value) if ch in LOOK_ALIKES]
        assume(swappable)
        at = draw(st.sampled_from(swappable))
        bad = value[:at] + LOOK_ALIKES[value[at]] + value[at + 1 :]
    elif how == "case":
        bad = value.upper()
    else:
        bad = value + draw(st.sampled_from(["0", "a", "x"])) * draw(
            st.integers(min_value=100, max_value=300)
        )
    assume(PATTERNS[field].fullmatch(bad) is None)  # a version may well be upper-case
    return bad


FIELDS = sorted(VALID)


@pytest.mark.parametrize("field", FIELDS)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_corrupted_identifier_on_release_create_is_a_4xx_and_stores_nothing(
    personas, field, data
):
    value = data.draw(corrupted(field))
    before = snapshot()
    body = {**VALID, field: value}
    response = Caller("requester", user=personas.requester).request(
        "POST", "/api/v1/releases", body
    )
    assert response.status_code == 400, (value, response.content)
    named = {e.get("field") for e in response.json().get("errors", [])}
    # A NUL is refused with the whole body, before any field is read (PostgreSQL cannot store it).
    assert named == {field} or "\x00" in value, value
    assert snapshot() == before


@pytest.mark.parametrize("field", ["project", "version", "artifact_digest", "environment"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_corrupted_identifier_in_the_gate_query_is_a_400_naming_it(personas, field, data):
    value = data.draw(corrupted(field))
    name = "digest" if field == "artifact_digest" else field
    query = {"digest": VALID["artifact_digest"], "environment": "production"}
    if name in ("project", "version"):
        query = {"project": VALID["project"], "version": VALID["version"]}
    query[name] = value
    client = Caller("requester", user=personas.requester)
    response = client.request("GET", f"/api/v1/gate?{urlencode(query)}")
    assert response.status_code == 400, (value, response.content)
    assert name in {e["field"] for e in response.json()["errors"]}
