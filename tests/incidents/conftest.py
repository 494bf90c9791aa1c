"""A promoted release of the personas' project, and callers of the alert intake."""

from typing import Any

import pytest

from releasegate.releases.models import Release
from releasegate.releases.services import release_promote
from tests.api.conftest import Caller, service_token
from tests.conftest import Personas
from tests.releases.gatehelpers import cleared_release, load
from tests.web.conftest import plain_static_storage  # noqa: F401 - the pages link static files


def promote(p: Personas, **kwargs: Any) -> Release:
    release = cleared_release(p, **kwargs)
    release_promote(release=release, actor=p.actor("requester"))
    return load(release)


@pytest.fixture
def promoted(personas: Personas) -> Release:
    return promote(personas)


@pytest.fixture
def alertmanager(personas: Personas) -> Caller:
    """Alertmanager, with the service token its http_config.authorization carries."""
    return Caller("alertmanager", token=service_token(personas, "alerts:write")[1])


def post_alerts(caller: Caller, body: Any, slug: str = "support-assistant") -> Any:
    return caller.request("POST", f"/api/v1/projects/{slug}/alerts", body)
