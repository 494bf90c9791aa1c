"""Status shown with a word and a shape, never by colour alone."""

from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from releasegate.releases.gate import Blocker
from releasegate.releases.models import EvidenceKind

register = template.Library()

_STATUS = {
    # status: (css class, symbol, words)
    "cleared": ("ok", "✔", "Cleared"),
    "blocked": ("bad", "✖", "Blocked"),
    "passed": ("ok", "✔", "Passed"),
    "failed": ("bad", "✖", "Failed"),
    "error": ("bad", "⚠", "Error"),
    "pending": ("wait", "…", "Pending"),
    "running": ("wait", "↻", "Running"),
    "draft": ("wait", "✎", "Draft"),
    "in_review": ("wait", "◔", "In review"),
    "promoted": ("ok", "▲", "Promoted"),
    "withdrawn": ("muted", "—", "Withdrawn"),
    "active": ("bad", "✖", "Active"),
    "lifted": ("muted", "↺", "Lifted"),
    "approved": ("ok", "✔", "Approved"),
    "stale": ("wait", "⚠", "On earlier evidence"),
    "present": ("ok", "✔", "Attached"),
    "missing": ("bad", "✖", "Missing"),
}


@register.simple_tag
def badge(status: str, words: str = "") -> SafeString:
    css, symbol, default = _STATUS.get(status, ("muted", "•", status))
    return format_html(
        '<span class="badge {}"><span aria-hidden="true">{}</span> {}</span>',
        css,
        symbol,
        words or default,
    )


@register.simple_tag
def gate_badge(decision: Any) -> SafeString:
    return badge("cleared" if decision.cleared else "blocked")


@register.filter
def plain(blocker: Blocker) -> str:
    """A blocker in plain words."""
    details = blocker.details
    if blocker.code == "evidence_missing":
        kind = details.get("kind", "")
        label = EvidenceKind(kind).label if kind in EvidenceKind.values else kind
        return f"Missing evidence: {label}."
    if blocker.code == "check_pending":
        status = details.get("status")
        if status == "missing":
            return f"Check {details.get('check')} has not run on the current evidence yet."
        return f"Check {details.get('check')} is still {status}."
    if blocker.code in {"approval_missing", "approval_stale", "approval_expired"}:
        need = int(details.get("need", 0)) - int(details.get("have", 0))
        prefix = f"Needs {need} more {details.get('role')} approval{'s' if need != 1 else ''}"
        reason = {
            "approval_missing": "",
            "approval_stale": ": the earlier approval was given on evidence that has since changed",
            "approval_expired": ": the earlier approval has expired",
        }[blocker.code]
        return f"{prefix}{reason}."
    return blocker.message


@register.filter
def label_of(kind: str) -> str:
    return EvidenceKind(kind).label if kind in EvidenceKind.values else kind


@register.filter
def get(mapping: Any, key: Any) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def short_digest(value: str) -> str:
    return value[:19] + "…" if isinstance(value, str) and len(value) > 20 else value


@register.filter
def plain_list(blockers: Any) -> list[tuple[Blocker, str]]:
    """Every blocker with its plain words; checks that have not run yet are said in one line."""
    not_run = [
        b for b in blockers if b.code == "check_pending" and b.details.get("status") == "missing"
    ]
    out: list[tuple[Blocker, str]] = []
    for blocker in blockers:
        if len(not_run) > 1 and blocker in not_run:
            if blocker is not_run[0]:
                names = ", ".join(str(b.details.get("check")) for b in not_run)
                out.append((blocker, f"Checks not yet run on the current evidence: {names}."))
            continue
        out.append((blocker, plain(blocker)))
    return out
