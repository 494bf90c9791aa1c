import pytest


@pytest.fixture(autouse=True)
def plain_static_storage(settings):
    """Pages link their CSS and JS through {% static %}; without `collectstatic` (production
    runs it in the image) the manifest storage has nothing to look the names up in."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
