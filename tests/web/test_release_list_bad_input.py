"""The releases list's search and filters: bad input is a 4xx that says what is wrong."""

import pytest

from tests.builders import make_release
from tests.web.helpers import signed_in

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("gate", ["", "cleared"])
def test_a_nul_in_the_release_search_is_a_400_naming_it(client, personas, gate):
    make_release(personas.project, personas.requester)

    response = signed_in(client, personas.security).get(
        "/releases/", {"q": "1.0\x00", "gate": gate}
    )

    assert response.status_code == 400
    assert "NUL" in response.content.decode()
