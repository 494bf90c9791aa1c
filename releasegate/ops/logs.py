"""Structured logs: one JSON object per line, with the request id, and no secrets in any record.

`RedactSecretsFilter` sits on every handler (a handler filter sees records propagated from every
logger, unlike a logger filter), so a token pasted into an error message or a password in a query
string is scrubbed before any formatter or handler sees it.
"""

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from releasegate.ops.context import current_request_id

_REDACTED = "[redacted]"
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # releasegate API tokens, personal (rgp_) and service (rgs_), wherever they appear.
    (re.compile(r"\brg[ps]_[A-Za-z0-9_\-.~+/=]+"), _REDACTED),
    # Incoming-webhook URLs whose path is the credential (Slack, Discord).
    (
        re.compile(r"(?i)(https://(?:hooks\.slack\.com|discord(?:app)?\.com/api/webhooks)/)\S+"),
        rf"\1{_REDACTED}",
    ),
    # Authorization header values.
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9_\-.~+/=]{8,}"), rf"\1 {_REDACTED}"),
    # key=value in query strings, form bodies and cookie headers.
    (
        re.compile(
            r"(?i)\b(password|passwd|pwd|secret|sessionid|csrftoken|csrfmiddlewaretoken|token|"
            r"api_key|apikey)=[^&\s;,'\"]*"
        ),
        rf"\1={_REDACTED}",
    ),
    # "password": "..." in JSON bodies or reprs of dicts.
    (
        re.compile(
            r"(?i)([\"'](?:password|secret|sessionid|token|authorization|cookie)[\"']\s*:\s*)"
            r"[\"'][^\"']*[\"']"
        ),
        rf"\1'{_REDACTED}'",
    ),
)

# Attributes of every LogRecord; anything else on a record came from `extra=` and is logged.
_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "request_id", "taskName"}
)
# Extras never logged, whatever their value: whole requests, headers and cookies.
_NEVER_LOGGED = frozenset(
    {"request", "headers", "cookies", "authorization", "cookie", "password", "secret", "token"}
)


# Every pattern above starts with one of these: most lines have none and skip the substitutions.
_MAYBE_SECRET = re.compile(
    r"rg[ps]_|(?i:bearer|basic|token|passw|pwd|secret|session|csrf|api_?key|authorization|"
    r"cookie|hooks\.slack|discord)"
)


def redact(text: str) -> str:
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: leave it to the handler's own error reporting
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            # django.request logs after the middleware has finished, but passes the request.
            request = getattr(record, "request", None)
            record.request_id = getattr(request, "request_id", None) or current_request_id()
        return True


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, request_id, then any extras (method, path, status, ...)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
        }
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRS or key.startswith("_") or key.lower() in _NEVER_LOGGED:
                continue
            entry[key] = _jsonable(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = redact(record.exc_text)
        return json.dumps(entry, ensure_ascii=False, default=str)
