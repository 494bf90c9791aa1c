"""Checks of input that the services of every area share."""

from typing import Any

from releasegate.errors import FieldError, InvalidInput

# A reason, a summary, a comment: long enough for a paragraph, short enough to read in a page.
MAX_TEXT = 5000


def text_problem(value: Any, *, limit: int = MAX_TEXT) -> str | None:
    """What is wrong with a required written text (a reason, a summary), or None when it will
    do. A NUL is refused too: PostgreSQL cannot store one in a text column."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return "must not be empty"
    if len(text) > limit or "\x00" in text:
        return f"at most {limit} characters, no NUL"
    return None


def required_text(value: Any, name: str = "reason", *, limit: int = MAX_TEXT) -> str:
    """`value` stripped of surrounding space; InvalidInput on the field `name` when
    `text_problem` finds something wrong with it."""
    problem = text_problem(value, limit=limit)
    if problem is None:
        return str(value).strip()
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            f"A written {name} is required.",
            code=f"{name}_required",
            errors=[FieldError(name, problem)],
        )
    raise InvalidInput(f"The {name} is too long.", errors=[FieldError(name, problem)])
