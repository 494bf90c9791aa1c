"""Password sign-in that `RELEASEGATE_LOCAL_LOGIN=false` turns off everywhere at once: the
sign-in page, its POST and the admin site's own login all authenticate through this backend."""

from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest


def local_login_enabled() -> bool:
    return bool(settings.RELEASEGATE_LOCAL_LOGIN)


class LocalPasswordBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if not local_login_enabled():
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
