"""Unknown `/api/v1/` paths answer a JSON 404 for every method, even with a session and CSRF
checks on (a POST used to get Django's HTML CSRF 403)."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
@pytest.mark.parametrize("signed_in", [True, False])
def test_unknown_api_paths_are_a_json_404_for_every_method(personas, method, signed_in):
    client = Client(enforce_csrf_checks=True)
    if signed_in:
        client.force_login(personas.admin)
    call = getattr(client, method)
    path = "/api/v1/no/such/endpoint"
    response = call(path) if method == "get" else call(path, "{}", "application/json")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "not_found"


@pytest.mark.django_db
def test_an_api_path_with_a_newline_is_a_json_404_not_an_html_page(client, personas):
    client.force_login(personas.security)
    for path in ("/api/v1/releases/%0A/gate", "/api/v1/nothing%0Ahere"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found", path
