"""The one-statement gate read on PostgreSQL answers exactly what the ORM loader (its reference)
answers: the same `GateFacts`, fact for fact, in every situation the gate rules on."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.http import QueryDict
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.api.serializers import GateQuerySerializer
from releasegate.api.views import plain_gate_query
from releasegate.checks.invalidation import check_results_invalidate
from releasegate.checks.models import CheckResult
from releasegate.errors import NotFound
from releasegate.incidents.models import BreakGlass, Hold
from releasegate.releases.gate_statement import read_visible
from releasegate.releases.models import Approval, Evidence, Project, Release, Veto
from releasegate.releases.questions import GateQuestion
from releasegate.releases.selectors import (
    load_gate_facts,
    visible_gate_decision,
)
from releasegate.releases.services import (
    approval_give,
    evidence_attach,
    policy_change,
    release_promote,
    role_revoke,
    veto_cast,
    veto_lift,
)
from tests.builders import (
    confirmed,
    digest_of,
    document,
    make_release,
    pass_checks,
    submitted_release,
)
from tests.conftest import make_personas
from tests.releases.gatehelpers import cleared_release, load, person_with


def assert_same_facts(release: Release) -> None:
    reference = load_gate_facts(load(release))
    fast = read_visible([release.project_id], GateQuestion(release_id=release.pk))
    assert fast == reference


def _approve(release: Release, user, role: str, **fields) -> Approval:
    """An approval row as it may stand in the database, whatever the services would refuse now."""
    release.refresh_from_db()
    return Approval.objects.create(
        release=release,
        role=role,
        user=user,
        manifest_digest=fields.pop("manifest_digest", release.manifest_digest),
        **fields,
    )


def _veto(release: Release, user, role: str = "sme", **fields) -> Veto:
    return Veto.objects.create(
        release=release,
        project=release.project,
        environment=release.environment,
        artifact_digest=release.artifact_digest,
        role=role,
        user=user,
        reason=fields.pop("reason", "not yet"),
        **fields,
    )


@pytest.mark.postgres
def test_a_draft_with_part_of_its_evidence_reads_the_same(personas):
    release = make_release(personas.project, personas.requester)
    evidence_attach(
        release=release,
        actor=personas.actor("requester"),
        kind="sbom",
        document=document("sbom"),
    )
    assert_same_facts(release)


@pytest.mark.postgres
def test_replaced_evidence_and_checks_of_older_manifests_read_the_same(personas):
    release = submitted_release(personas.project, personas.requester)
    pass_checks(release)
    approval_give(release=release, actor=personas.actor("security"), role="security")
    review = document("pipeline_review") | {"reviewer": "someone else"}
    evidence_attach(
        release=release, actor=personas.actor("requester"), kind="pipeline_review", document=review
    )
    pass_checks(release, checks=("sbom_valid", "licenses"))
    assert Evidence.objects.filter(release=release, is_current=False).exists()
    assert_same_facts(release)


@pytest.mark.postgres
def test_pipeline_review_without_a_date_or_with_a_number_reads_the_same(personas):
    release = make_release(personas.project, personas.requester)
    for reviewed_at in (None, 20260101):
        review = document("pipeline_review")
        review.pop("reviewed_at", None)
        if reviewed_at is not None:
            review["reviewed_at"] = reviewed_at
        Evidence.objects.filter(release=release).update(is_current=False)
        Evidence.objects.create(
            release=release,
            kind="pipeline_review",
            document=review,
            digest=digest_of(str(reviewed_at)),
            attached_by_label="test",
        )
        assert_same_facts(release)


@pytest.mark.postgres
def test_stale_expired_requester_and_duplicate_role_approvals_read_the_same(personas):
    p = personas
    release = cleared_release(p)
    _approve(release, p.requester, "security")  # the requester's own: never counts
    _approve(release, p.security, "sme")  # a second role for the same person
    _approve(release, p.sme, "sme", manifest_digest=digest_of("older evidence"))
    old = _approve(release, p.admin, "security")
    Approval.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    _approve(release, p.auditor, "auditor")  # a role the policy does not ask for
    same_instant = timezone.now()
    for user in (p.security, p.sme):
        _approve(release, user, "security", created_at=same_instant)
    assert_same_facts(release)


@pytest.mark.postgres
def test_approvers_who_lost_the_role_or_were_deactivated_read_the_same(personas):
    p = personas
    release = cleared_release(p)
    gone = person_with(p, "gone", "sme")
    _approve(release, gone, "sme")
    role_revoke(project=p.project, user=p.security, role="security", actor=Actor.system_actor())
    get_user_model().objects.filter(pk=gone.pk).update(is_active=False)
    facts = read_visible([p.project.pk], GateQuestion(release_id=release.pk))
    assert facts is not None
    assert {(a.username, a.holds_role) for a in facts.approvals} == {
        ("security", False),
        ("sme", True),
        ("gone", False),
    }
    assert_same_facts(release)


@pytest.mark.postgres
def test_an_approval_held_under_another_project_does_not_hold_the_role_here(personas):
    p = personas
    other = make_personas(slug="other-assistant", prefix="other-")
    release = cleared_release(p)
    outsider = person_with(other, "borrowed", "security")
    _approve(release, outsider, "security")
    facts = read_visible([p.project.pk], GateQuestion(release_id=release.pk))
    assert facts is not None
    assert [a.holds_role for a in facts.approvals if a.username == "borrowed"] == [False]
    assert_same_facts(release)


@pytest.mark.postgres
def test_lifted_active_carried_release_only_and_cross_project_vetoes_read_the_same(personas):
    p = personas
    other = make_personas(slug="other-assistant", prefix="other-")
    artifact = digest_of("shared artifact")
    earliest = make_release(p.project, p.requester, version="0.8.0")
    earlier = make_release(p.project, p.requester, version="0.9.0")
    staging = make_release(p.project, p.requester, version="0.9.1", environment="staging")
    release = cleared_release(p, version="1.0.0", artifact=artifact)
    later = make_release(p.project, p.requester, version="1.1.0")
    elsewhere = make_release(other.project, other.requester, version="5.0.0", artifact=artifact)
    _veto(earliest, p.sme, reason="carried from earlier")
    _veto(earlier, p.security, role="security", scope=Veto.Scope.RELEASE, reason="only there")
    _veto(staging, p.sme, reason="another environment")
    # Carry-forward is not by id: a veto on a later release reaches an open earlier one.
    _veto(later, p.sme, reason="a later release reaches back to an open one")
    _veto(elsewhere, other.sme, reason="secret reason elsewhere")
    _veto(elsewhere, other.sme, scope=Veto.Scope.RELEASE, reason="release-only elsewhere")
    own = veto_cast(
        release=release, actor=p.actor("sme"), role="sme", reason="mine", scope="release"
    )
    lifted = veto_cast(release=release, actor=p.actor("security"), role="security", reason="x")
    veto_lift(veto=lifted, actor=p.actor("security"), reason="fixed")
    facts = read_visible([p.project.pk], GateQuestion(release_id=release.pk))
    assert facts is not None
    assert {v.reason for v in facts.vetoes} == {
        "carried from earlier",
        "a later release reaches back to an open one",
        "secret reason elsewhere",
        own.reason,
    }
    for each in (earliest, earlier, staging, release, later, elsewhere):
        assert_same_facts(each)


@pytest.mark.postgres
def test_a_carried_veto_reaches_what_was_not_promoted_when_it_was_cast_in_both_loaders(personas):
    p = personas
    shipped = cleared_release(p, version="0.9.0")
    release_promote(release=shipped, actor=p.actor("requester"))
    spare = make_release(p.project, p.requester, version="0.0.1-spare")
    vetoed = submitted_release(p.project, p.requester, version="1.0.0")
    veto_cast(release=vetoed, actor=p.actor("sme"), role="sme", reason="leaks prompts")
    later = make_release(p.project, p.requester, version="2.0.0")
    reached = {}
    for each in (shipped, spare, vetoed, later):
        facts = read_visible([p.project.pk], GateQuestion(release_id=each.pk))
        assert facts is not None
        reached[each.version] = [v.reason for v in facts.vetoes]
        assert_same_facts(each)
    assert reached == {
        "0.9.0": [],  # promoted before the veto: it was judged then
        "0.0.1-spare": ["leaks prompts"],  # an earlier id does not escape
        "1.0.0": ["leaks prompts"],
        "2.0.0": ["leaks prompts"],
    }


@pytest.mark.postgres
def test_a_promoted_release_reads_the_same(personas):
    p = personas
    release = cleared_release(p)
    promoted, decision = release_promote(release=release, actor=p.actor("requester"))
    assert decision.cleared
    facts = read_visible([p.project.pk], GateQuestion(release_id=release.pk))
    assert facts is not None and facts.release.promoted_at is not None
    assert_same_facts(release)
    _veto(promoted, p.sme, reason="after the fact")
    assert_same_facts(release)


@pytest.mark.postgres
def test_several_results_per_check_and_waivers_read_the_same(personas):
    p = personas
    release = cleared_release(p)
    now = timezone.now()
    for n, status in enumerate(("failed", "passed", "error", "running")):
        CheckResult.objects.create(
            release=release,
            check_name="vulnerabilities",
            manifest_digest=release.manifest_digest,
            status=status,
            source=CheckResult.Source.CI,
            external_id=f"ci-{n}",
            summary=f"run {n}",
            updated_at=now,  # the same instant: the gate keeps the worse one
            valid_until=now + timedelta(days=n) if status == "passed" else None,
        )
    CheckResult.objects.create(
        release=release,
        check_name="licenses",
        manifest_digest=release.manifest_digest,
        status="passed",
        source=CheckResult.Source.CI,
        external_id="waived",
        valid_until=now - timedelta(hours=1),
        updated_at=now + timedelta(seconds=1),
    )
    assert_same_facts(release)


@pytest.mark.postgres
def test_a_project_without_a_policy_is_refused_by_both(personas):
    project = Project.objects.create(slug="no-policy", name="No policy")
    release = Release.objects.create(
        project=project,
        version="1.0.0",
        artifact_digest=digest_of("no policy"),
        requester=personas.requester,
        manifest_digest=digest_of("manifest"),
    )
    with pytest.raises(NotFound):
        load_gate_facts(load(release))
    with pytest.raises(NotFound):
        read_visible([project.pk], GateQuestion(release_id=release.pk))


@pytest.mark.postgres
def test_only_releases_of_the_given_projects_are_found(personas):
    p = personas
    other = make_personas(slug="other-assistant", prefix="other-")
    artifact = digest_of("shared artifact")
    mine = make_release(p.project, p.requester, version="1.0.0", artifact=artifact)
    theirs = make_release(other.project, other.requester, version="1.0.0", artifact=artifact)
    here = [p.project.pk]
    assert read_visible(here, GateQuestion(release_id=theirs.pk)) is None
    assert read_visible([], GateQuestion(release_id=mine.pk)) is None
    assert read_visible(here, GateQuestion(release_id=mine.pk + 10_000)) is None
    by_digest = read_visible(here, GateQuestion(artifact_digest=artifact))
    assert by_digest is not None and by_digest.release.id == mine.pk
    both = [p.project.pk, other.project.pk]
    newest = read_visible(both, GateQuestion(artifact_digest=artifact))
    assert newest is not None and newest.release.id == theirs.pk
    narrowed = read_visible(
        both, GateQuestion(project_slug=p.project.slug, artifact_digest=artifact)
    )
    assert narrowed is not None and narrowed.release.id == mine.pk
    by_version = read_visible(both, GateQuestion(project_slug=other.project.slug, version="1.0.0"))
    assert by_version is not None and by_version.release.id == theirs.pk


@pytest.mark.postgres
def test_a_veto_shows_on_the_very_next_gate_query(personas):
    p = personas
    release = cleared_release(p)
    ask = {"project_slug": p.project.slug, "version": release.version}
    assert visible_gate_decision(p.actor("auditor"), GateQuestion(**ask)).cleared
    veto_cast(release=release, actor=p.actor("sme"), role="sme", reason="stop")
    after = visible_gate_decision(p.actor("auditor"), GateQuestion(**ask))
    assert [b.code for b in after.blockers] == ["veto"]
    with pytest.raises(NotFound):
        visible_gate_decision(p.actor("outsider"), GateQuestion(**ask))


@pytest.mark.parametrize(
    "query",
    [
        {"project": "support-assistant", "version": "1.0.0"},
        {"digest": "sha256:" + "a" * 64},
        {"digest": "sha256:" + "a" * 64, "project": "support-assistant"},
        {"digest": "sha256:" + "a" * 64, "version": "1.0.0"},
        {"project": "support-assistant"},
        {"version": "1.0.0"},
        {},
        {"project": "", "version": "1.0.0"},
        {"project": " support-assistant ", "version": "1.0.0"},
        {"project": "support-assistant", "version": "1.0.0\t"},
        {"project": "x" * 64, "version": "v" * 100},
        {"project": "x" * 65, "version": "1.0.0"},
        {"project": "support-assistant", "version": "v" * 101},
        {"project": "support\x00", "version": "1.0.0"},
        {"project": "support-assistant", "version": "1.0.0\x01"},
        {"project": "süpport", "version": "1.0.0"},
        {"project": "support-assistant", "version": "1.0.0", "other": "ignored"},
    ],
)
def test_plainly_valid_gate_queries_read_as_the_serializer_reads_them(query):
    params = QueryDict(urlencode(query))
    serializer = GateQuerySerializer(data=params)
    valid = serializer.is_valid()
    plain = plain_gate_query(params)
    if plain is not None:
        assert valid and plain == dict(serializer.validated_data)
    # Everything the shortcut leaves alone is still answered by the serializer, errors and all.
    if not valid:
        assert plain is None


def test_repeated_gate_query_parameters_read_as_the_serializer_reads_them():
    params = QueryDict("project=a&project=support-assistant&version=1.0.0")
    serializer = GateQuerySerializer(data=params)
    assert serializer.is_valid()
    assert plain_gate_query(params) == dict(serializer.validated_data)


def _hold(release: Release, fingerprint: str, **fields) -> Hold:
    return Hold.objects.create(
        project=release.project,
        release=release,
        fingerprint=fingerprint,
        alert_name=fields.pop("alert_name", "ToxicOutputRate"),
        summary=fields.pop("summary", "toxic output above 0.5%"),
        severity="critical",
        since=fields.pop("since", timezone.now() - timedelta(minutes=5)),
        **fields,
    )


@pytest.mark.postgres
def test_active_resolved_and_lifted_holds_read_the_same(personas):
    p = personas
    release = cleared_release(p)
    promoted, _ = release_promote(release=release, actor=p.actor("requester"))
    other = make_release(p.project, p.requester, version="2.0.0")
    now = timezone.now()
    _hold(promoted, "a1", signal="toxic output rate")
    _hold(promoted, "b2", alert_status="resolved", resolved_at=now, alert_name="PiiLeak")
    _hold(promoted, "c3", lifted_at=now, lifted_by=p.security, lift_reason="false alarm")
    _hold(other, "d4")
    facts = read_visible([p.project.pk], GateQuestion(release_id=release.pk))
    assert facts is not None and {h.alert_name for h in facts.holds} == {
        "ToxicOutputRate",
        "PiiLeak",
    }
    assert_same_facts(release)


def _break_glass(release: Release, requester, confirmer=None, **fields) -> BreakGlass:
    now = timezone.now()
    confirmed = fields.pop("confirmed_at", now if confirmer is not None else None)
    return BreakGlass.objects.create(
        project=release.project,
        release=release,
        reason="customer-facing outage",
        incident="INC-42",
        requested_by=requester,
        confirm_by=now + timedelta(minutes=30),
        confirmed_by=confirmer,
        confirmed_at=confirmed,
        until=confirmed + timedelta(hours=4) if confirmed else None,
        review_due=fields.pop("review_due", confirmed + timedelta(days=7) if confirmed else None),
        **fields,
    )


@pytest.mark.postgres
def test_break_glasses_and_reviews_due_read_the_same(personas):
    p = personas
    release = submitted_release(p.project, p.requester, version="1.0.0")
    earlier = submitted_release(p.project, p.requester, version="0.9.0")
    elsewhere = make_personas(slug="elsewhere", prefix="x-")
    foreign = submitted_release(elsewhere.project, elsewhere.requester)
    now = timezone.now()
    assert_same_facts(release)
    _break_glass(release, p.requester)  # pending: not a fact yet
    _break_glass(release, p.requester, p.security, confirmed_at=now - timedelta(hours=5))
    _break_glass(release, p.admin, p.security)  # the latest confirmed: the one in force
    _break_glass(earlier, p.requester, p.security, review_due=now - timedelta(days=1))
    _break_glass(earlier, p.requester, p.security, reviewed_at=now, reviewed_by=p.security)
    _break_glass(foreign, elsewhere.requester, elsewhere.security)
    facts = read_visible([p.project.pk], GateQuestion(release_id=release.pk))
    assert facts is not None and facts.break_glass is not None
    assert facts.break_glass.requested_by == "admin"
    assert len(facts.reviews_due) == 3
    assert_same_facts(release)
    assert_same_facts(earlier)


@pytest.mark.postgres
def test_the_inputs_the_checks_read_read_the_same(personas):
    p = personas
    release = cleared_release(p)
    # Dropping AGPL and SSPL from the deny-list loosens it: a security holder confirms.
    confirmed(
        policy_change(
            project=p.project,
            actor=p.actor("admin"),
            changes={"license_denylist": ["GPL-3.0-only"], "vulnerability_threshold": "medium"},
            note="another deny-list",
        ),
        p.security,
    )
    check_results_invalidate(project_id=None, check="vulnerabilities")  # an import
    check_results_invalidate(project_id=p.project.pk, check="vulnerabilities")  # a waiver
    check_results_invalidate(project_id=p.project.pk, check="vulnerabilities")
    facts = read_visible([p.project.pk], GateQuestion(release_id=release.pk))
    assert facts is not None
    assert (facts.advisory_generation, facts.waiver_generation) == (1, 2)
    assert facts.policy.license_denylist == ("GPL-3.0-only",)
    assert facts.policy.vulnerability_threshold == "medium"
    assert {c.inputs_digest for c in facts.checks} != {""}
    assert_same_facts(release)
