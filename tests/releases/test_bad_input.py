"""Bad input to any service raises a typed error that says where, and nothing stored changes."""

import pytest

from releasegate.accounts.actors import Actor
from releasegate.checks.services import check_result_record
from releasegate.errors import Conflict, InvalidInput, NotPermitted
from releasegate.releases.services import (
    approval_give,
    evidence_attach,
    policy_change,
    project_create,
    release_create,
    release_submit,
    release_withdraw,
    role_revoke,
    veto_cast,
)
from tests.builders import digest_of, document, make_release, submitted_release
from tests.conftest import make_personas
from tests.releases.gatehelpers import service_token, snapshot


def _fields(error) -> list[str]:
    return [e.field for e in error.errors]


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "0" * 63,
        "sha256:" + "0" * 65,
        "md5:" + "0" * 32,
        "0" * 64,
        "",
        None,
        42,
    ],
)
def test_release_with_a_bad_artifact_digest_is_refused(personas, digest):
    p = personas
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        release_create(
            project=p.project, actor=p.actor("requester"), version="1.0.0", artifact_digest=digest
        )
    assert refused.value.status == 400
    assert _fields(refused.value) == ["artifact_digest"]
    assert snapshot() == before


def test_release_names_every_bad_field_at_once(personas):
    p = personas
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        release_create(
            project=p.project,
            actor=p.actor("requester"),
            version="../1",
            artifact_digest="sha256:nothex",
            environment="Prod Env",
            summary=["not", "text"],
        )
    assert _fields(refused.value) == ["version", "artifact_digest", "environment", "summary"]
    assert snapshot() == before


def test_duplicate_version_is_a_conflict(personas):
    p = personas
    make_release(p.project, p.requester, version="1.0.0")
    before = snapshot()
    with pytest.raises(Conflict) as refused:
        release_create(
            project=p.project,
            actor=p.actor("requester"),
            version="1.0.0",
            artifact_digest=digest_of("other"),
        )
    assert refused.value.code == "duplicate_version"
    assert snapshot() == before


@pytest.mark.parametrize("who", ["security", "sme", "admin", "auditor", "outsider"])
def test_only_a_requester_creates_releases(personas, who):
    p = personas
    before = snapshot()
    with pytest.raises(NotPermitted):
        release_create(
            project=p.project, actor=p.actor(who), version="1.0.0", artifact_digest=digest_of("x")
        )
    assert snapshot() == before


def test_unknown_evidence_kind_is_refused(personas):
    p = personas
    release = make_release(p.project, p.requester)
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        evidence_attach(release=release, actor=p.actor("requester"), kind="vibes", document={})
    assert refused.value.code == "unknown_kind"
    assert _fields(refused.value) == ["kind"]
    assert snapshot() == before


def test_malformed_document_is_refused_with_field_paths(personas):
    p = personas
    release = make_release(p.project, p.requester)
    review = document("pipeline_review")
    review["findings"][1]["severity"] = "catastrophic"
    del review["scope"]
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        evidence_attach(
            release=release, actor=p.actor("requester"), kind="pipeline_review", document=review
        )
    assert refused.value.code == "invalid_evidence"
    assert set(_fields(refused.value)) == {"(document)", "findings[1].severity"}
    assert any("scope" in e.message for e in refused.value.errors)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("kind", "doc", "field"),
    [
        ("data_flow_map", {"flows": [{"source": "a"}]}, "flows[0]"),
        ("monitoring_plan", {"owner": "x", "escalation": "y", "signals": []}, "signals"),
        (
            "agent_access_review",
            {
                "identities": [
                    {
                        "name": "bot",
                        "kind": "robot",
                        "permissions": ["read"],
                        "resources": [],
                        "auth": "none",
                    }
                ]
            },
            "identities[0].kind",
        ),
        ("sbom", {"bomFormat": "CycloneDX", "specVersion": "2.0"}, "specVersion"),
        ("sbom", {"hello": "world"}, "(document)"),
        ("pipeline_review", ["not", "an", "object"], "(document)"),
        ("pipeline_review", "{not json", "(document)"),
    ],
)
def test_every_kind_rejects_a_document_that_does_not_fit(personas, kind, doc, field):
    p = personas
    release = make_release(p.project, p.requester)
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        evidence_attach(release=release, actor=p.actor("requester"), kind=kind, document=doc)
    assert field in _fields(refused.value)
    assert snapshot() == before


def test_pipeline_review_dated_in_the_future_is_refused_on_attach(personas):
    p = personas
    release = make_release(p.project, p.requester)
    review = document("pipeline_review") | {"reviewed_at": "2999-01-01"}
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        evidence_attach(
            release=release, actor=p.actor("requester"), kind="pipeline_review", document=review
        )
    assert _fields(refused.value) == ["reviewed_at"]
    assert snapshot() == before


def test_invalid_link_is_refused(personas):
    p = personas
    release = make_release(p.project, p.requester)
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        evidence_attach(
            release=release,
            actor=p.actor("requester"),
            kind="sbom",
            document=document("sbom"),
            link="javascript:alert(1)",
        )
    assert _fields(refused.value) == ["link"]
    assert snapshot() == before


def test_submitting_twice_is_a_wrong_state(personas):
    p = personas
    release = submitted_release(p.project, p.requester)
    before = snapshot()
    with pytest.raises(Conflict) as refused:
        release_submit(release=release, actor=p.actor("requester"))
    assert refused.value.code == "invalid_state"
    assert snapshot() == before


def test_approving_a_draft_is_a_wrong_state(personas):
    p = personas
    release = make_release(p.project, p.requester)
    before = snapshot()
    with pytest.raises(Conflict) as refused:
        approval_give(release=release, actor=p.actor("security"), role="security")
    assert refused.value.code == "invalid_state"
    assert snapshot() == before


def test_approving_in_an_unknown_role_is_bad_input(personas):
    p = personas
    release = submitted_release(p.project, p.requester)
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        approval_give(release=release, actor=p.actor("security"), role="overlord")
    assert _fields(refused.value) == ["role"]
    assert snapshot() == before


def test_vetoing_a_withdrawn_release_is_a_wrong_state(personas):
    p = personas
    release = make_release(p.project, p.requester)
    release_withdraw(release=release, actor=p.actor("requester"), reason="cancelled")
    before = snapshot()
    with pytest.raises(Conflict) as refused:
        veto_cast(release=release, actor=p.actor("security"), role="security", reason="no")
    assert refused.value.code == "invalid_state"
    assert snapshot() == before


def test_withdrawing_needs_a_reason_and_a_withdrawable_state(personas):
    p = personas
    release = make_release(p.project, p.requester)
    before = snapshot()
    with pytest.raises(InvalidInput):
        release_withdraw(release=release, actor=p.actor("requester"), reason=" ")
    release_withdraw(release=release, actor=p.actor("requester"), reason="cancelled")
    after_withdrawal = snapshot()
    assert after_withdrawal != before
    with pytest.raises(Conflict) as refused:
        release_withdraw(release=release, actor=p.actor("requester"), reason="again")
    assert refused.value.code == "invalid_state"
    assert snapshot() == after_withdrawal


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"required_items": ["sbom", "horoscope"]}, "required_items"),
        ({"required_checks": "licenses"}, "required_checks"),
        ({"required_approvals": {"security": -1}}, "required_approvals"),
        ({"required_approvals": {"requester": 1}}, "required_approvals"),
        ({"veto_roles": ["admin"]}, "veto_roles"),
        ({"max_approval_age_days": 0}, "max_approval_age_days"),
        ({"max_review_age_days": True}, "max_review_age_days"),
        ({"vulnerability_threshold": "meh"}, "vulnerability_threshold"),
        ({"required_checks": ["external_ci"]}, "external_ci"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_policy_change_is_refused_and_keeps_the_version(personas, changes, field):
    p = personas
    before = snapshot()
    version = p.project.current_policy.version
    with pytest.raises(InvalidInput) as refused:
        policy_change(project=p.project, actor=p.actor("admin"), changes=changes)
    assert refused.value.code == "invalid_policy"
    assert field in _fields(refused.value)
    p.project.refresh_from_db()
    assert p.project.current_policy.version == version
    assert p.project.policies.count() == 1
    assert snapshot() == before


def test_policy_change_makes_a_new_version(personas):
    p = personas
    new = policy_change(
        project=p.project, actor=p.actor("admin"), changes={"max_approval_age_days": 7}
    )
    assert new.version == 2
    assert p.project.policies.count() == 2
    assert p.project.policies.get(version=1).max_approval_age_days == 14


@pytest.mark.parametrize("who", ["requester", "security", "sme", "auditor", "outsider"])
def test_only_a_project_admin_changes_the_policy(personas, who):
    p = personas
    with pytest.raises(NotPermitted):
        policy_change(project=p.project, actor=p.actor(who), changes={"max_approval_age_days": 7})
    assert p.project.policies.count() == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"check": "astrology", "status": "passed"}, "check"),
        ({"check": "licenses", "status": "green"}, "status"),
        ({"check": "licenses", "status": "passed", "details": []}, "details"),
        ({"check": "licenses", "status": "passed", "details_url": "ftp://x"}, "details_url"),
    ],
)
def test_bad_check_result_is_refused(personas, kwargs, field):
    p = personas
    release = submitted_release(p.project, p.requester)
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        check_result_record(release=release, actor=Actor.system_actor(), **kwargs)
    assert _fields(refused.value) == [field]
    assert snapshot() == before


def test_bad_project_is_refused(personas):
    before = snapshot()
    with pytest.raises(InvalidInput):
        project_create(slug="Not A Slug", name="x", actor=Actor.system_actor())
    with pytest.raises(Conflict):
        project_create(slug=personas.project.slug, name="again", actor=Actor.system_actor())
    assert snapshot() == before


def test_revoking_an_unknown_role_is_bad_input(personas):
    p = personas
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        role_revoke(project=p.project, user=p.sme, role="overlord", actor=p.actor("admin"))
    assert _fields(refused.value) == ["role"]
    assert snapshot() == before


def test_approval_comment_must_be_text(personas):
    p = personas
    release = submitted_release(p.project, p.requester)
    before = snapshot()
    with pytest.raises(InvalidInput):
        approval_give(release=release, actor=p.actor("sme"), role="sme", comment={"x": 1})
    assert snapshot() == before


@pytest.mark.parametrize("who", ["security", "sme", "admin", "auditor", "outsider"])
def test_only_a_requester_attaches_evidence(personas, who):
    p = personas
    release = make_release(p.project, p.requester)
    before = snapshot()
    with pytest.raises(NotPermitted):
        evidence_attach(release=release, actor=p.actor(who), kind="sbom", document=document("sbom"))
    assert snapshot() == before


def test_pushed_check_result_needs_an_external_id(personas):
    p = personas
    release = submitted_release(p.project, p.requester)
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        check_result_record(
            release=release,
            actor=Actor.for_token(service_token(p.project)),
            check="licenses",
            status="passed",
        )
    assert _fields(refused.value) == ["external_id"]
    assert snapshot() == before


@pytest.mark.parametrize("who", ["requester", "security", "auditor", "outsider"])
def test_people_cannot_report_check_results(personas, who):
    p = personas
    release = submitted_release(p.project, p.requester)
    before = snapshot()
    with pytest.raises(NotPermitted):
        check_result_record(
            release=release, actor=p.actor(who), check="licenses", status="passed", external_id="x"
        )
    assert snapshot() == before


def test_token_of_another_project_cannot_report_check_results(personas):
    p = personas
    other = make_personas(slug="other-project", prefix="o_")
    release = submitted_release(p.project, p.requester)
    before = snapshot()
    with pytest.raises(NotPermitted):
        check_result_record(
            release=release,
            actor=Actor.for_token(service_token(other.project)),
            check="licenses",
            status="passed",
            external_id="run-1",
        )
    assert snapshot() == before
