from collections.abc import Iterator

import pytest

from releasegate.signing import keys
from tests.api.conftest import person, service  # noqa: F401  (the API's callers)


@pytest.fixture(autouse=True)
def _key_registered_in_this_test() -> Iterator[None]:
    # The key is loaded once per process and registered then; a test's rollback drops that row.
    keys.forget_loaded_key()
    yield
    keys.forget_loaded_key()
