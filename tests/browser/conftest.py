from tests.web.conftest import plain_static_storage  # noqa: F401 - the live server renders pages too
