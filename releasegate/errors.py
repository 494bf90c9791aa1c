"""Typed errors raised by services; every entry point (API, pages, CLI, admin) maps them alike.

Each carries a stable machine-readable `code`, a human `message`, and for bad input the fields
that are wrong. A service raises before it writes, or inside its transaction, so nothing changes.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass
class ReleasegateError(Exception):
    message: str
    code: str = "error"
    status: int = 400
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.errors:
            return self.message
        details = "; ".join(f"{e.field}: {e.message}" for e in self.errors)
        return f"{self.message} ({details})"

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


class InvalidInput(ReleasegateError):
    """The caller sent something malformed; 400."""

    def __init__(
        self, message: str, *, code: str = "invalid", errors: list[FieldError] | None = None
    ):
        super().__init__(message=message, code=code, status=400, errors=errors or [])


class NotPermitted(ReleasegateError):
    """The caller may see the object but may not do this to it; 403."""

    def __init__(self, message: str, *, code: str = "forbidden"):
        super().__init__(message=message, code=code, status=403)


class NotFound(ReleasegateError):
    """Unknown, or not visible to the caller (the two are never told apart); 404."""

    def __init__(self, message: str = "Not found.", *, code: str = "not_found"):
        super().__init__(message=message, code=code, status=404)


class Conflict(ReleasegateError):
    """The act does not fit the object's current state; 409."""

    def __init__(
        self, message: str, *, code: str = "conflict", extra: dict[str, object] | None = None
    ):
        super().__init__(message=message, code=code, status=409, extra=extra or {})


class Unavailable(ReleasegateError):
    """The database stayed busy or unreachable through every retry; 503, try again later.
    Nothing of the act was stored."""

    RETRY_AFTER_SECONDS = 2

    def __init__(self, message: str = "The service is busy; nothing was changed. Try again."):
        super().__init__(
            message=message,
            code="unavailable",
            status=503,
            extra={"retry_after": self.RETRY_AFTER_SECONDS},
        )
