from typing import Any

from django import forms

from releasegate.accounts.actors import Scope
from releasegate.accounts.roles import Role
from releasegate.identity.issuers import allowed_issuers


class TrustPolicyForm(forms.Form):
    issuer = forms.ChoiceField(label="Issuer")
    audience = forms.CharField(
        label="Audience", max_length=200, help_text="the exact aud the pipeline asks its token for"
    )
    claims = forms.CharField(
        label="Claims",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="one name=value a line, matched exactly, e.g. repository_id=123456789",
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=[(s.value, s.value) for s in Scope],
        widget=forms.CheckboxSelectMultiple,
    )
    lifetime_minutes = forms.IntegerField(
        label="Token lifetime (minutes)", min_value=5, max_value=15, initial=10
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        issuer = self.fields["issuer"]
        assert isinstance(issuer, forms.ChoiceField)
        issuer.choices = [(url, url) for url in allowed_issuers()]

    def clean_claims(self) -> dict[str, str]:
        claims: dict[str, str] = {}
        for line in self.cleaned_data["claims"].splitlines():
            if not line.strip():
                continue
            name, sep, value = line.strip().partition("=")
            if not sep:
                raise forms.ValidationError(f"{line.strip()!r} is not name=value")
            if name.strip() in claims:
                raise forms.ValidationError(f"{name.strip()} is given twice")
            claims[name.strip()] = value.strip()
        return claims


class GroupMappingForm(forms.Form):
    group = forms.CharField(label="IdP group", max_length=200)
    role = forms.ChoiceField(label="Role", choices=[(r.value, r.value) for r in Role])
