"""JSON bodies, bounded in size and depth, read once, with nothing PostgreSQL cannot store."""

import json
from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import BaseParser

from releasegate.api.errors import RequestTooLarge

MAX_DEPTH = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_structure(data: Any) -> None:
    """Refuse NUL characters (PostgreSQL text and jsonb cannot hold them) and runaway nesting,
    walking iteratively so a hostile document cannot exhaust the stack."""
    pending: list[tuple[Any, int]] = [(data, 0)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise exceptions.ParseError(f"The JSON is nested deeper than {MAX_DEPTH} levels.")
        if isinstance(value, str):
            if "\x00" in value:
                raise exceptions.ParseError("The JSON contains a NUL character.")
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    raise exceptions.ParseError("The JSON contains a NUL character.")
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)


class BoundedJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        # Reading one byte past the limit catches a body longer than its Content-Length said.
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge()
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            raise exceptions.ParseError(f"Malformed JSON: {error}") from None
        _check_structure(data)
        return data
