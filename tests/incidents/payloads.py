"""Alertmanager webhook notifications (payload version 4) as Alertmanager sends them: the
`notify/webhook` message, timestamps with nanoseconds, the zero time as endsAt of a firing alert,
16-hex-digit fingerprints, a grouped notification carrying several alerts."""

import copy
import hashlib
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"
STARTS_AT = "2026-12-01T09:58:30.123456789Z"
GENERATOR = (
    "http://prometheus-k8s.monitoring.svc:9090/graph?g0.expr=sum+by+%28pod%29+%28rate%28"
    "support_assistant_toxic_outputs_total%5B10m%5D%29%29+%3E+0.005&g0.tab=1"
)


def fingerprint(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def alert(
    name: str,
    *,
    status: str = "firing",
    severity: str | None = "critical",
    starts_at: str = STARTS_AT,
    ends_at: str | None = None,
    summary: str = "",
    seed: str | None = None,
    **labels: str,
) -> dict[str, Any]:
    all_labels = {"alertname": name, "namespace": "support", "prometheus": "monitoring/k8s"}
    if severity is not None:
        all_labels["severity"] = severity
    all_labels.update(labels)
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {
            "summary": summary or f"{name} is firing",
            "description": f"{name} crossed its threshold for 10 minutes.",
            "runbook_url": "https://runbooks.example.com/toxic-output",
        },
        "startsAt": starts_at,
        "endsAt": ends_at or (ZERO_TIME if status == "firing" else "2026-12-01T10:20:00.5Z"),
        "generatorURL": GENERATOR,
        "fingerprint": fingerprint(seed or repr(sorted(all_labels.items()))),
    }


def notification(*alerts: dict[str, Any], group_by: tuple[str, ...] = ("alertname",)) -> dict:
    """One webhook notification grouping `alerts` as Alertmanager does: common labels are the
    labels every alert shares, the status is firing while any alert fires."""
    alerts_copy = copy.deepcopy(list(alerts))
    common = dict(alerts_copy[0]["labels"]) if alerts_copy else {}
    for a in alerts_copy[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    common_annotations = dict(alerts_copy[0]["annotations"]) if alerts_copy else {}
    for a in alerts_copy[1:]:
        common_annotations = {
            k: v for k, v in common_annotations.items() if a["annotations"].get(k) == v
        }
    group_labels = {k: common[k] for k in group_by if k in common}
    matchers = ", ".join(f'{k}="{v}"' for k, v in group_labels.items())
    return {
        "receiver": "releasegate",
        "status": "firing" if any(a["status"] == "firing" for a in alerts_copy) else "resolved",
        "alerts": alerts_copy,
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": common_annotations,
        "externalURL": "http://alertmanager-main.monitoring.svc:9093",
        "version": "4",
        "groupKey": '{}/{releasegate_digest=~"sha256:.+"}:{' + matchers + "}",
        "truncatedAlerts": 0,
    }
