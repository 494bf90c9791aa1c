"""The request id of the work in progress, shared by the web request and the tasks it enqueues."""

import re
import uuid
from contextvars import ContextVar

# Accepted from a caller (a load balancer or CI): short, and only characters safe in a log line.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")

request_id_var: ContextVar[str | None] = ContextVar("releasegate_request_id", default=None)


def sane_request_id(candidate: str | None) -> str:
    """The caller's id when it is well formed, else a new one: never trust a header into a log."""
    if candidate and _SANE_REQUEST_ID.match(candidate):
        return candidate
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return request_id_var.get()
