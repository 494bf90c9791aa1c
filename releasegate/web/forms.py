"""Forms for the pages. They shape what was typed into the documents the services take; the
services validate. `apply_errors` puts a service's field errors back onto the form fields."""

import re
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone

from releasegate.accounts.roles import Role
from releasegate.errors import ReleasegateError
from releasegate.releases.models import EvidenceKind, Veto
from releasegate.releases.policy import CHECK_NAMES, SEVERITIES
from releasegate.web.lockout import (
    signin_failure_record,
    signin_failures_clear,
    signin_locked_until,
)

_PATH_RE = re.compile(r"^(?P<list>\w+)\[(?P<index>\d+)\](?:\.(?P<field>\w+))?")


def comma_list(value: str) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class SignInForm(AuthenticationForm):
    """Django's sign-in form, refusing a username and address that failed too often lately."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": "Too many failed sign-ins. Try again in %(wait)s.",
    }

    def _ip(self) -> str | None:
        return self.request.META.get("REMOTE_ADDR") if self.request is not None else None

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        until = signin_locked_until(username=username, ip=self._ip())
        if until is not None:
            minutes = max(1, int((until - timezone.now()).total_seconds() // 60) + 1)
            wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
            raise forms.ValidationError(
                self.error_messages["locked"], code="locked", params={"wait": wait}
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if username:
                signin_failure_record(username=username, ip=self._ip())
            raise
        signin_failures_clear(username=username, ip=self._ip())
        return cleaned


def _choices(field: forms.Field, choices: list[tuple[str, str]]) -> None:
    assert isinstance(field, forms.ChoiceField)
    field.choices = choices


class ReleaseCreateForm(forms.Form):
    # Identifiers are passed on as typed (not stripped): the service matches them whole, so a
    # stray space or newline is an error on the field rather than quietly another value.
    project = forms.ChoiceField(label="Project")
    version = forms.CharField(label="Version", max_length=100, strip=False, help_text="e.g. 1.4.2")
    artifact_digest = forms.CharField(
        label="Artifact digest",
        max_length=71,
        strip=False,
        help_text="sha256: followed by 64 lowercase hex digits",
    )
    environment = forms.CharField(
        label="Environment", max_length=64, strip=False, initial="production"
    )
    summary = forms.CharField(
        label="Summary", required=False, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args: Any, projects: list[Any], **kwargs: Any):
        super().__init__(*args, **kwargs)
        _choices(self.fields["project"], [(p.slug, p.name) for p in projects])


def apply_errors(
    error: ReleasegateError,
    top: forms.Form,
    *,
    rows_key: str = "",
    row_forms: list[forms.Form] | None = None,
    extras: forms.Form | None = None,
) -> None:
    """Put each of a service's field errors on the form field it names (`flows[1].destination`
    lands on the second flow row's destination, `link` on the attachment form `extras`); what
    matches no field goes to the top form."""
    if not error.errors:
        top.add_error(None, error.message)
        return
    for item in error.errors:
        if extras is not None and item.field in extras.fields:
            extras.add_error(item.field, item.message)
            continue
        match = _PATH_RE.match(item.field)
        if match and row_forms is not None and match["list"] == rows_key:
            index = int(match["index"])
            if index < len(row_forms):
                target = row_forms[index]
                name = match["field"]
                if name and name in target.fields:
                    target.add_error(name, item.message)
                else:
                    target.add_error(None, f"{item.field}: {item.message}")
                continue
        name = item.field.split(".")[0].split("[")[0]
        if name in top.fields:
            top.add_error(name, item.message)
        else:
            top.add_error(
                None,
                f"{item.field}: {item.message}" if item.field != "(document)" else item.message,
            )


class ApproveForm(forms.Form):
    role = forms.ChoiceField(label="Approve as")
    comment = forms.CharField(
        label="Comment (optional)", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args: Any, roles: list[str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        _choices(self.fields["role"], [(r, r) for r in roles])


class VetoForm(forms.Form):
    role = forms.ChoiceField(label="Veto as")
    reason = forms.CharField(
        label="Reason (required)", widget=forms.Textarea(attrs={"rows": 3}), max_length=5000
    )
    scope = forms.ChoiceField(
        label="Applies to",
        choices=Veto.Scope.choices,
        initial=Veto.Scope.CARRY_FORWARD,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args: Any, roles: list[str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        _choices(self.fields["role"], [(r, r) for r in roles])


class LiftForm(forms.Form):
    reason = forms.CharField(
        label="Reason for lifting (required)",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=5000,
    )


class PolicyForm(forms.Form):
    required_items = forms.MultipleChoiceField(
        label="Required checklist items",
        required=False,
        choices=EvidenceKind.choices,
        widget=forms.CheckboxSelectMultiple,
    )
    required_checks = forms.MultipleChoiceField(
        label="Required checks",
        required=False,
        choices=[(c, c) for c in CHECK_NAMES],
        widget=forms.CheckboxSelectMultiple,
    )
    security_approvals = forms.IntegerField(
        label="Security approvals needed", min_value=0, max_value=10
    )
    sme_approvals = forms.IntegerField(
        label="Expert (sme) approvals needed", min_value=0, max_value=10
    )
    veto_roles = forms.MultipleChoiceField(
        label="Roles that may veto",
        required=False,
        choices=[(Role.SECURITY.value, "security"), (Role.SME.value, "sme")],
        widget=forms.CheckboxSelectMultiple,
    )
    max_approval_age_days = forms.IntegerField(
        label="Approvals expire after (days)", min_value=1, max_value=3650
    )
    max_review_age_days = forms.IntegerField(
        label="Pipeline review valid for (days)", min_value=1, max_value=3650
    )
    vulnerability_threshold = forms.ChoiceField(
        label="Fail on vulnerabilities from", choices=[(s, s) for s in SEVERITIES]
    )
    license_denylist = forms.CharField(
        label="Denied licenses", required=False, help_text="comma-separated SPDX ids"
    )
    external_ci_url = forms.CharField(
        label="External CI status URL", required=False, max_length=500
    )
    external_ci_token_env = forms.ChoiceField(
        label="Token the worker sends to it",
        required=False,
        help_text="only those the operator binds to an origin (RELEASEGATE_EXTERNAL_CI_TOKENS)",
    )
    environments = forms.CharField(
        label="Environments releases may name",
        max_length=2000,
        help_text="comma-separated; a veto carries forward within its environment",
    )
    hold_severities = forms.CharField(
        label="Alert severities that hold a release",
        required=False,
        max_length=1000,
        help_text="comma-separated values of the alerts' severity label; empty holds on none",
    )
    break_glass_hours = forms.IntegerField(
        label="A break-glass lasts (hours)", min_value=1, max_value=72
    )
    break_glass_review_days = forms.IntegerField(
        label="Post-incident review due within (days)", min_value=1, max_value=3650
    )
    note = forms.CharField(label="Why (recorded with the version)", required=False, max_length=500)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What the operator lets workers send, and where to: `policy_change` asks the same.
        bound = settings.RELEASEGATE_EXTERNAL_CI_TOKENS
        self.fields["external_ci_token_env"].choices = [("", "none")] + [  # type: ignore[attr-defined]
            (name, f"{name} (only to {origin})") for name, origin in sorted(bound.items())
        ]

    @staticmethod
    def initial_from(policy: Any) -> dict[str, Any]:
        return {
            "required_items": policy.required_items,
            "required_checks": policy.required_checks,
            "security_approvals": policy.required_approvals.get("security", 0),
            "sme_approvals": policy.required_approvals.get("sme", 0),
            "veto_roles": policy.veto_roles,
            "max_approval_age_days": policy.max_approval_age_days,
            "max_review_age_days": policy.max_review_age_days,
            "vulnerability_threshold": policy.vulnerability_threshold,
            "license_denylist": ", ".join(policy.license_denylist),
            "external_ci_url": (policy.external_ci or {}).get("url", ""),
            "external_ci_token_env": (policy.external_ci or {}).get("token_env", ""),
            "environments": ", ".join(policy.environments),
            "hold_severities": ", ".join(policy.hold_severities),
            "break_glass_hours": policy.break_glass_hours,
            "break_glass_review_days": policy.break_glass_review_days,
        }

    def changes(self, current_external_ci: dict[str, Any]) -> dict[str, Any]:
        d = self.cleaned_data
        external_ci = dict(current_external_ci or {})
        if d["external_ci_url"]:
            external_ci["url"] = d["external_ci_url"]
        else:
            external_ci.pop("url", None)
        if d["external_ci_token_env"]:
            external_ci["token_env"] = d["external_ci_token_env"]
        else:
            external_ci.pop("token_env", None)
        # `policy_change` refuses a token not bound to the URL's origin.
        return {
            "required_items": d["required_items"],
            "required_checks": d["required_checks"],
            "required_approvals": {"security": d["security_approvals"], "sme": d["sme_approvals"]},
            "veto_roles": d["veto_roles"],
            "max_approval_age_days": d["max_approval_age_days"],
            "max_review_age_days": d["max_review_age_days"],
            "vulnerability_threshold": d["vulnerability_threshold"],
            "license_denylist": comma_list(d["license_denylist"]),
            "external_ci": external_ci,
            "environments": comma_list(d["environments"]),
            "hold_severities": comma_list(d["hold_severities"]),
            "break_glass_hours": d["break_glass_hours"],
            "break_glass_review_days": d["break_glass_review_days"],
        }


POLICY_FIELD_MAP = {
    "required_approvals": "security_approvals",
    "external_ci": "external_ci_url",
    "external_ci.token_env": "external_ci_token_env",
}


class RoleGrantForm(forms.Form):
    username = forms.CharField(label="Username", max_length=150)
    role = forms.ChoiceField(label="Role", choices=[(r.value, r.value) for r in Role])


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        label="Token name", max_length=100, help_text="what it is for, e.g. laptop CLI"
    )
    expires_in_days = forms.TypedChoiceField(
        label="Expires after",
        coerce=int,
        choices=[(7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "365 days")],
        initial=90,
    )
