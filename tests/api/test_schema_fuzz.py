"""Property-based fuzzing of API v1 against its own OpenAPI schema, in process (WSGI).

Positive cases must get a documented status, content type and body shape; negative cases (wrong
types, missing fields) must never get a 5xx. Path ids are mapped onto real releases and vetoes so
the fuzzer reaches the services, not only 404s. Examples are bounded to keep the run short.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from releasegate.releases.services import veto_cast
from tests.api.conftest import personal_token, service_token
from tests.builders import make_release, pass_checks, submitted_release

EXAMPLES = 20


def _load(mode: GenerationMode) -> Any:
    # Loaded at collection from the generator the schema endpoint serves (no request, no database).
    document = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))
    schema = schemathesis.openapi.from_dict(document)
    schema.app = get_wsgi_application()
    schema.config.generation.update(
        modes=[mode], max_examples=EXAMPLES, deterministic=True, database="none"
    )
    return schema


positive = _load(GenerationMode.POSITIVE)
negative = _load(GenerationMode.NEGATIVE)


@pytest.fixture(autouse=True)
def keep_connection(db: Any) -> Iterator[None]:
    """The raw WSGI handler closes the database connection after each request, which would end
    the test's transaction; Django's own test client suspends that the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def world(personas: Any) -> dict[str, Any]:
    review = submitted_release(personas.project, personas.requester, version="1.0.0")
    pass_checks(review)
    draft = make_release(personas.project, personas.requester, version="0.9.0")
    veto = veto_cast(release=review, actor=personas.actor("security"), role="security", reason="r")
    return {
        "releases": [review.pk, draft.pk, 10**9],
        "vetoes": [veto.pk, 10**9],
        "service": service_token(
            personas, "gate:read", "releases:write", "checks:write", "releases:promote"
        )[1],
        "reviewer": personal_token(personas.security),
    }


def _prepare(case: Any, world: dict[str, Any]) -> dict[str, str]:
    params = case.path_parameters or {}
    if isinstance(params.get("release_id"), int):
        params["release_id"] = world["releases"][params["release_id"] % 3]
    if isinstance(params.get("veto_id"), int):
        params["veto_id"] = world["vetoes"][params["veto_id"] % 2]
    # Sign-offs and lifts need a person holding a reviewer role; everything else the pipeline.
    person = "signoffs" in case.path or "/lift" in case.path
    return {"Authorization": f"Bearer {world['reviewer' if person else 'service']}"}


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@positive.parametrize()
@FUZZ_SETTINGS
def test_positive_cases_conform_to_the_schema(case: Any, world: dict[str, Any]) -> None:
    case.call_and_validate(
        headers=_prepare(case, world),
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


@negative.parametrize()
@FUZZ_SETTINGS
def test_negative_cases_never_get_a_server_error(case: Any, world: dict[str, Any]) -> None:
    case.call_and_validate(headers=_prepare(case, world), checks=[not_a_server_error])
