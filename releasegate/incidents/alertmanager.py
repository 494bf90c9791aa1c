"""The Alertmanager webhook payload, version 4, read strictly.

The shape is Alertmanager's `notify/webhook` message (`template.Data` plus version, groupKey and
truncatedAlerts). Every field Alertmanager always sends is required with its type; a field it may
add in a later release of version 4 is ignored, as Alertmanager's own consumers do. A malformed
payload is an `InvalidInput` naming the field (`alerts[2].labels.severity`), before anything is
written.
"""

from dataclasses import dataclass
from datetime import datetime

from django.utils.dateparse import parse_datetime

from releasegate.errors import FieldError, InvalidInput
from releasegate.jsonvalue import JSONObject, JSONValue

STATUSES = ("firing", "resolved")
MAX_ALERTS = 1000
MAX_TEXT = 10_000
# Alertmanager writes the zero time.Time for an alert that has not ended.
ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(frozen=True)
class Notification:
    group_key: str
    status: str
    receiver: str
    truncated_alerts: int
    alerts: tuple[Alert, ...]


class _Reader:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, where: str, message: str) -> None:
        self.errors.append(FieldError(where, message))

    def text(self, data: JSONObject, key: str, where: str, *, empty: bool = True) -> str:
        value = data.get(key)
        if key not in data:
            self.fail(where, "required")
        elif not isinstance(value, str):
            self.fail(where, "must be a string")
        elif len(value) > MAX_TEXT or "\x00" in value:
            self.fail(where, f"at most {MAX_TEXT} characters, no NUL")
        elif not empty and not value:
            self.fail(where, "must not be empty")
        else:
            return value
        return ""

    def strings(self, data: JSONObject, key: str, where: str) -> dict[str, str]:
        value = data.get(key)
        if key not in data:
            self.fail(where, "required")
            return {}
        if not isinstance(value, dict):
            self.fail(where, "must be an object of strings")
            return {}
        for name, item in value.items():
            if not isinstance(item, str) or len(item) > MAX_TEXT or "\x00" in item:
                self.fail(f"{where}.{name}", "must be a string (no NUL, bounded)")
        return {str(k): v for k, v in value.items() if isinstance(v, str)}

    def status(self, data: JSONObject, where: str) -> str:
        value = self.text(data, "status", where)
        if value and value not in STATUSES:
            self.fail(where, "must be firing or resolved")
        return value

    def moment(self, data: JSONObject, key: str, where: str) -> datetime | None:
        value = self.text(data, key, where)
        if not value or value == ZERO_TIME:
            return None
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            self.fail(where, "must be an RFC 3339 date and time with its offset")
            return None
        return parsed


def read_notification(body: JSONValue) -> Notification:
    """The notification in `body`, or InvalidInput naming every wrong field."""
    r = _Reader()
    if not isinstance(body, dict):
        raise InvalidInput(
            "The body must be an Alertmanager webhook notification (a JSON object).",
            code="invalid_alert_payload",
            errors=[FieldError("(document)", "not an object")],
        )
    version = body.get("version")
    if version != "4":
        r.fail("version", 'must be "4" (the Alertmanager webhook payload version)')
    group_key = r.text(body, "groupKey", "groupKey")
    status = r.status(body, "status")
    receiver = r.text(body, "receiver", "receiver")
    r.strings(body, "groupLabels", "groupLabels")
    r.strings(body, "commonLabels", "commonLabels")
    r.strings(body, "commonAnnotations", "commonAnnotations")
    r.text(body, "externalURL", "externalURL")
    truncated = body.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        r.fail("truncatedAlerts", "must be a whole number, 0 or more")
        truncated = 0
    raw_alerts = body.get("alerts")
    alerts: list[Alert] = []
    if not isinstance(raw_alerts, list):
        r.fail("alerts", "required: a list of alerts")
    elif len(raw_alerts) > MAX_ALERTS:
        r.fail("alerts", f"at most {MAX_ALERTS} alerts in one notification")
    else:
        for i, raw in enumerate(raw_alerts):
            where = f"alerts[{i}]"
            if not isinstance(raw, dict):
                r.fail(where, "must be an object")
                continue
            before = len(r.errors)
            alert_status = r.status(raw, f"{where}.status")
            labels = r.strings(raw, "labels", f"{where}.labels")
            annotations = r.strings(raw, "annotations", f"{where}.annotations")
            starts_at = r.moment(raw, "startsAt", f"{where}.startsAt")
            ends_at = r.moment(raw, "endsAt", f"{where}.endsAt")
            generator_url = r.text(raw, "generatorURL", f"{where}.generatorURL")
            fingerprint = r.text(raw, "fingerprint", f"{where}.fingerprint", empty=False)
            if fingerprint and (len(fingerprint) > 64 or not fingerprint.isalnum()):
                r.fail(f"{where}.fingerprint", "letters and digits, up to 64")
            if labels and not labels.get("alertname"):
                r.fail(f"{where}.labels.alertname", "required")
            if "startsAt" in raw and starts_at is None and len(r.errors) == before:
                r.fail(f"{where}.startsAt", "an alert has started")
            if len(r.errors) == before and starts_at is not None:
                alerts.append(
                    Alert(
                        status=alert_status,
                        labels=labels,
                        annotations=annotations,
                        starts_at=starts_at,
                        ends_at=ends_at,
                        generator_url=generator_url,
                        fingerprint=fingerprint,
                    )
                )
    if r.errors:
        raise InvalidInput(
            "The Alertmanager notification is not valid.",
            code="invalid_alert_payload",
            errors=r.errors,
        )
    return Notification(
        group_key=group_key,
        status=status,
        receiver=receiver,
        truncated_alerts=truncated,
        alerts=tuple(alerts),
    )
