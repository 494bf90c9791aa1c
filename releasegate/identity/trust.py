"""What a trust policy must say to be accepted, and whether an ID token's claims match one.

The rules come from how CI federation has gone wrong elsewhere (PyPI trusted publishing, Vault's
JWT auth, cloud workload identity):
- a policy without a repository condition trusts every pipeline of the issuer (a missing `sub`
  or attribute condition);
- names (`repository`, `sub`, `project_path`, `repository_owner`) are reusable: a repository
  renamed, deleted and re-created, or an organisation that frees its name, hands the trust to
  whoever takes the name next, so a policy must pin an id the issuer never reuses;
- a reusable workflow's `job_workflow_ref` is the same in every repository that calls it, so it
  cannot stand in for the repository either;
- an absent claim must never count as a match (no claim, null and "" are all "does not match"),
  and values are compared whole, with no wildcards.
"""

import re
from collections.abc import Mapping
from typing import Any

from releasegate.errors import FieldError
from releasegate.jsonvalue import JSONValue

# Claims that pin the repository by an id its issuer never reuses, alone or with a name inside
# an immutable owner: GitHub Actions and GitLab CI vocabularies.
REPOSITORY_PINS: tuple[frozenset[str], ...] = (
    frozenset({"repository_id"}),
    frozenset({"repository_owner_id", "repository"}),
    frozenset({"project_id"}),
    frozenset({"namespace_id", "project_path"}),
)
# Checked by the exchange itself; a policy that pinned them would only mislead its reader.
RESERVED_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})
CLAIM_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_CLAIMS = 20
MAX_VALUE = 500


def pinning_problem(claims: Mapping[str, str]) -> str | None:
    """Why a policy with these claims would trust too much, or None."""
    names = set(claims)
    if not names:
        return (
            "a policy without claims would trust every pipeline of the issuer: pin the "
            "repository by repository_id (GitHub Actions) or project_id (GitLab)"
        )
    if any(pin <= names for pin in REPOSITORY_PINS):
        return None
    return (
        "pin the repository by an id that is never reused: repository_id (or "
        "repository_owner_id with repository) on GitHub Actions, project_id (or namespace_id "
        "with project_path) on GitLab. Names such as repository, sub or job_workflow_ref pass "
        "to whoever renames, re-creates or calls the repository or workflow next"
    )


def clean_claims(raw: JSONValue) -> tuple[dict[str, str], list[FieldError]]:
    """The claims as a name -> exact value mapping, and what is wrong with them."""
    errors: list[FieldError] = []
    if not isinstance(raw, Mapping):
        return {}, [FieldError("claims", "an object of claim name to exact value")]
    clean: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not CLAIM_NAME_RE.match(name):
            errors.append(FieldError("claims", f"{name!r} is not a claim name"))
        elif name in RESERVED_CLAIMS:
            errors.append(FieldError("claims", f"{name} is checked by the exchange itself"))
        elif not isinstance(value, str) or not value.strip() or value != value.strip():
            errors.append(FieldError(f"claims.{name}", "a non-empty value without spaces around"))
        elif len(value) > MAX_VALUE or not value.isprintable():
            errors.append(FieldError(f"claims.{name}", f"printable, at most {MAX_VALUE} chars"))
        else:
            clean[name] = value
    if len(clean) > MAX_CLAIMS:
        errors.append(FieldError("claims", f"at most {MAX_CLAIMS} claims"))
    if not errors:
        problem = pinning_problem(clean)
        if problem is not None:
            errors.append(FieldError("claims", problem))
    return clean, errors


def _claim_text(value: Any) -> str | None:
    """A claim as the text a policy compares with: strings as they are, whole numbers in decimal
    (some issuers send ids as numbers); anything else never matches."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def claims_match(required: Mapping[str, str], token_claims: Mapping[str, Any]) -> bool:
    """Every required claim is present in the token with exactly the required value."""
    for name, expected in required.items():
        actual = _claim_text(token_claims.get(name))
        if actual is None or actual == "" or actual != expected:
            return False
    return True
