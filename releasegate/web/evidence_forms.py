"""The checklist items' forms: for each evidence kind a top form and a formset of rows (findings,
flows, signals, identities) that together build the document the service takes, and back."""

from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.forms import BaseFormSet, formset_factory

from releasegate.api.parsers import load_checked_json
from releasegate.releases.models import EvidenceKind
from releasegate.releases.policy import SEVERITIES
from releasegate.web.forms import comma_list

BLANK = [("", "—")]


def _joined(values: Any) -> str:
    return ", ".join(str(v) for v in values) if isinstance(values, list) else ""


class EvidenceForm(forms.Form):
    """The top of one checklist item's form: builds the document from its fields and rows."""

    def document(self, rows: list[dict[str, Any]]) -> Any:
        raise NotImplementedError

    @staticmethod
    def initial_from(document: dict[str, Any]) -> dict[str, Any]:
        return {}


class RowForm(forms.Form):
    """One row (a finding, flow, signal or identity) of an item's list."""

    def row(self) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def initial_from(row: dict[str, Any]) -> dict[str, Any]:
        return dict(row)


def _within_upload_limit(upload: Any) -> None:
    # Django bounds a form's fields, not its files: without this an upload of any size is read
    # (an SBOM, into memory) and stored.
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if upload is not None and upload.size > limit:
        raise forms.ValidationError(f"The file is larger than {limit // (1024 * 1024)} MB.")


class AttachmentForm(forms.Form):
    """The optional attachment or link any checklist item may carry."""

    attachment = forms.FileField(
        label="Attachment (optional)", required=False, validators=[_within_upload_limit]
    )
    link = forms.CharField(
        label="Link (optional)", required=False, max_length=500, help_text="an http(s) URL"
    )


class PipelineReviewForm(EvidenceForm):
    reviewer = forms.CharField(label="Reviewer", max_length=300)
    reviewed_at = forms.CharField(
        label="Reviewed on", widget=forms.DateInput(attrs={"type": "date"})
    )
    scope = forms.CharField(label="Scope", help_text="comma-separated, e.g. training, serving")

    def document(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        d = self.cleaned_data
        return {
            "reviewer": d["reviewer"],
            "reviewed_at": d["reviewed_at"],
            "scope": comma_list(d["scope"]),
            "findings": rows,
        }

    @staticmethod
    def initial_from(document: dict[str, Any]) -> dict[str, Any]:
        return {
            "reviewer": document.get("reviewer", ""),
            "reviewed_at": document.get("reviewed_at", ""),
            "scope": _joined(document.get("scope")),
        }


class FindingForm(RowForm):
    id = forms.CharField(label="Finding id", max_length=300)
    severity = forms.ChoiceField(label="Severity", choices=BLANK + [(s, s) for s in SEVERITIES])
    title = forms.CharField(label="Title", max_length=2000)
    status = forms.ChoiceField(
        label="Status", choices=BLANK + [(s, s) for s in ("open", "mitigated", "accepted")]
    )

    def row(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in ("id", "severity", "title", "status")}


class FlowForm(RowForm):
    source = forms.CharField(label="Source", max_length=300)
    destination = forms.CharField(label="Destination", max_length=300)
    data_classes = forms.CharField(
        label="Data classes", required=False, help_text="comma-separated"
    )
    third_party = forms.BooleanField(label="Leaves for a third party", required=False)
    customer_data = forms.ChoiceField(
        label="Customer data", choices=BLANK + [(c, c) for c in ("real", "synthetic", "none")]
    )
    cached = forms.BooleanField(label="Cached", required=False)
    agreement_ref = forms.CharField(label="Agreement", required=False, max_length=300)

    def row(self) -> dict[str, Any]:
        d = self.cleaned_data
        row = {
            "source": d["source"],
            "destination": d["destination"],
            "data_classes": comma_list(d["data_classes"]),
            "third_party": d["third_party"],
            "customer_data": d["customer_data"],
            "cached": d["cached"],
        }
        if d["agreement_ref"]:
            row["agreement_ref"] = d["agreement_ref"]
        return row

    @staticmethod
    def initial_from(row: dict[str, Any]) -> dict[str, Any]:
        return {
            **row,
            "data_classes": _joined(row.get("data_classes")),
            "agreement_ref": row.get("agreement_ref") or "",
        }


class MonitoringPlanForm(EvidenceForm):
    owner = forms.CharField(label="Owner", max_length=300)
    escalation = forms.CharField(
        label="Escalation", max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def document(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "owner": self.cleaned_data["owner"],
            "escalation": self.cleaned_data["escalation"],
            "signals": rows,
        }

    @staticmethod
    def initial_from(document: dict[str, Any]) -> dict[str, Any]:
        return {"owner": document.get("owner", ""), "escalation": document.get("escalation", "")}


class SignalForm(RowForm):
    name = forms.CharField(label="Signal", max_length=300)
    kind = forms.ChoiceField(
        label="Kind",
        choices=BLANK
        + [
            (k, k) for k in ("output_anomaly", "data_exposure", "drift", "abuse", "latency", "cost")
        ],
    )
    threshold = forms.CharField(label="Threshold", max_length=300)
    runbook = forms.CharField(label="Runbook URL", max_length=500)

    def row(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in ("name", "kind", "threshold", "runbook")}


class IdentityForm(RowForm):
    name = forms.CharField(label="Identity", max_length=300)
    kind = forms.ChoiceField(
        label="Kind",
        choices=BLANK + [(k, k) for k in ("agent", "service_account", "mcp_server", "tool")],
    )
    permissions = forms.MultipleChoiceField(
        label="Permissions",
        required=False,
        choices=[(p, p) for p in ("read", "edit", "write", "admin")],
        widget=forms.CheckboxSelectMultiple,
    )
    resources = forms.CharField(label="Resources", required=False, help_text="comma-separated")
    auth = forms.ChoiceField(
        label="Authentication", choices=BLANK + [(a, a) for a in ("oauth", "token", "mtls", "none")]
    )
    justification = forms.CharField(label="Justification", required=False, max_length=2000)

    def row(self) -> dict[str, Any]:
        d = self.cleaned_data
        row = {
            "name": d["name"],
            "kind": d["kind"],
            "permissions": list(d["permissions"]),
            "resources": comma_list(d["resources"]),
            "auth": d["auth"],
        }
        if d["justification"]:
            row["justification"] = d["justification"]
        return row

    @staticmethod
    def initial_from(row: dict[str, Any]) -> dict[str, Any]:
        return {
            **row,
            "resources": _joined(row.get("resources")),
            "justification": row.get("justification") or "",
        }


class SbomForm(EvidenceForm):
    sbom = forms.FileField(
        label="SBOM file (CycloneDX or SPDX JSON)", validators=[_within_upload_limit]
    )

    def document(self, rows: list[dict[str, Any]]) -> Any:
        upload = self.cleaned_data["sbom"]
        try:
            return load_checked_json(upload.read())
        except ValueError as exc:
            self.add_error("sbom", f"not JSON: {exc}")
            return None


@dataclass(frozen=True)
class StructuredEvidence:
    """How one kind's form is built: a top form, and a formset of rows under `rows_key`."""

    top: type[EvidenceForm]
    row: type[RowForm] | None
    rows_key: str
    rows_label: str


class FlowsOnly(EvidenceForm):
    def document(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"flows": rows}


class IdentitiesOnly(EvidenceForm):
    def document(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"identities": rows}


EVIDENCE_FORMS: dict[str, StructuredEvidence] = {
    EvidenceKind.PIPELINE_REVIEW: StructuredEvidence(
        PipelineReviewForm, FindingForm, "findings", "Findings"
    ),
    EvidenceKind.DATA_FLOW_MAP: StructuredEvidence(FlowsOnly, FlowForm, "flows", "Data flows"),
    EvidenceKind.MONITORING_PLAN: StructuredEvidence(
        MonitoringPlanForm, SignalForm, "signals", "Signals"
    ),
    EvidenceKind.AGENT_ACCESS_REVIEW: StructuredEvidence(
        IdentitiesOnly, IdentityForm, "identities", "Identities"
    ),
    EvidenceKind.SBOM: StructuredEvidence(SbomForm, None, "", ""),
}
EXTRA_ROWS = 2


def row_formset(
    spec: StructuredEvidence, *, data: Any = None, initial: list[dict[str, Any]] | None = None
) -> BaseFormSet | None:
    if spec.row is None:
        return None
    factory = formset_factory(spec.row, extra=EXTRA_ROWS, can_delete=True)
    return factory(data=data, initial=initial, prefix=spec.rows_key)


def kept_rows(formset: BaseFormSet | None) -> tuple[list[dict[str, Any]], list[forms.Form]]:
    """The rows that make up the document, and the form each came from (same order)."""
    if formset is None:
        return [], []
    forms_kept = [f for f in formset.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
    return [f.row() for f in forms_kept], forms_kept  # type: ignore[attr-defined]
