"""JSON bodies, bounded in size and depth, read once, with nothing PostgreSQL cannot store."""

import json
import math
from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import BaseParser

from releasegate.api.errors import RequestTooLarge

MAX_DEPTH = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        # 1e400 parses as infinity, which neither JSON nor PostgreSQL's jsonb can hold.
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise ValueError("The JSON contains a NUL character.")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("The JSON contains an unpaired UTF-16 surrogate escape.") from None


def _check_structure(data: Any) -> None:
    """Refuse NUL characters and unpaired surrogates (PostgreSQL text and jsonb cannot hold
    them) and runaway nesting, walking iteratively so a hostile document cannot exhaust the
    stack."""
    pending: list[tuple[Any, int]] = [(data, 0)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"The JSON is nested deeper than {MAX_DEPTH} levels.")
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key)
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)


def load_checked_json(raw: bytes) -> Any:
    """`raw` as a JSON document we can store, or ValueError saying what is wrong with it."""
    try:
        data = json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float
        )
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise ValueError(f"Malformed JSON: {error}") from None
    _check_structure(data)
    return data


class BoundedJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        # Reading one byte past the limit catches a body longer than its Content-Length said.
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge()
        try:
            return load_checked_json(raw)
        except ValueError as error:
            raise exceptions.ParseError(str(error)) from None
