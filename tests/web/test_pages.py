"""Every page for every persona: who sees what, what they may do, and the query counts."""

import pytest

from releasegate.checks.models import CheckResult
from releasegate.releases.services import approval_give, evidence_attach, veto_cast
from releasegate.web.selectors import PAGE_SIZE
from tests.builders import confirmed, document, make_release, pass_checks, submitted_release
from tests.web.helpers import signed_in, text

pytestmark = pytest.mark.django_db

READERS = ("requester", "security", "sme", "admin", "auditor")


@pytest.fixture
def release(personas):
    return submitted_release(personas.project, personas.requester)


def release_pages(release_id: int) -> list[str]:
    return [
        f"/releases/{release_id}/",
        f"/releases/{release_id}/audit/",
        f"/releases/{release_id}/audit.json",
        f"/releases/{release_id}/veto/",
        f"/releases/{release_id}/promote/",
        f"/releases/{release_id}/evidence/sbom/",
    ]


@pytest.mark.parametrize("name", READERS)
def test_every_role_holder_reads_the_release_page(client, personas, release, name):
    response = signed_in(client, getattr(personas, name)).get(f"/releases/{release.pk}/")
    assert response.status_code == 200
    body = text(response)
    assert "support-assistant 1.0.0" in body
    assert "Blocked" in body


def test_outsider_gets_404_for_every_page_of_a_release(client, personas, release):
    signed_in(client, personas.outsider)
    for url in release_pages(release.pk) + [f"/releases/{release.pk}/vetoes/1/lift/"]:
        assert client.get(url).status_code == 404, url
    for url in (f"/releases/{release.pk}/approve/", f"/releases/{release.pk}/submit/"):
        assert client.post(url, {"role": "security"}).status_code == 404, url
    assert client.get("/projects/support-assistant/").status_code == 404


def test_outsider_sees_no_release_in_lists(client, personas, release):
    signed_in(client, personas.outsider)
    assert "1.0.0" not in text(client.get("/releases/"))
    assert "1.0.0" not in text(client.get("/"))


def test_unknown_release_is_404(client, personas):
    assert signed_in(client, personas.requester).get("/releases/999999/").status_code == 404


@pytest.mark.parametrize(
    ("name", "veto", "approve", "edit", "promote_page"),
    [
        ("requester", False, False, True, 200),
        ("security", True, True, False, 403),
        ("sme", True, True, False, 403),
        ("admin", False, False, False, 403),
        ("auditor", False, False, False, 403),
    ],
)
def test_actions_are_offered_only_to_people_who_may(
    client, personas, release, name, veto, approve, edit, promote_page
):
    signed_in(client, getattr(personas, name))
    body = text(client.get(f"/releases/{release.pk}/"))
    assert ('id="veto-button"' in body) is veto
    assert (f'action="/releases/{release.pk}/approve/"' in body) is approve
    assert (f"/releases/{release.pk}/evidence/sbom/" in body) is edit
    assert 'id="promote-button"' not in body  # not cleared
    assert client.get(f"/releases/{release.pk}/veto/").status_code == (200 if veto else 403)
    assert client.get(f"/releases/{release.pk}/promote/").status_code == promote_page
    assert client.get(f"/releases/{release.pk}/evidence/sbom/").status_code == (
        200 if edit else 403
    )


def test_release_page_renders_evidence_for_people(client, personas, release):
    body = text(signed_in(client, personas.sme).get(f"/releases/{release.pk}/"))
    # data flows and identities as tables
    assert "<td>prompt</td><td>LLM provider</td>" in body
    assert "<td>crm-mcp</td><td>mcp_server</td><td>read, write</td>" in body
    # SBOM component count, open pipeline findings only
    assert 'class="sbom-count">2</strong> components' in body
    assert "Verbose logs in staging" in body
    assert "Unpinned base image" not in body
    # monitoring signals
    assert "PII in responses" in body


def test_release_page_shows_vulnerability_counts_and_worst_findings(client, personas, release):
    from tests.web.helpers import record_check

    record_check(
        release,
        "vulnerabilities",
        status="failed",
        summary="1 critical",
        details={
            "threshold": "high",
            "failing": [
                {
                    "advisory": "GHSA-crit",
                    "severity": "critical",
                    "severity_given": True,
                    "component": "requests",
                    "version": "2.32.3",
                    "purl": "pkg:pypi/requests@2.32.3",
                },
                {
                    "advisory": "OSV-unrated",
                    "severity": "high",
                    "severity_given": False,
                    "component": "b",
                    "version": "1",
                    "purl": "pkg:pypi/b@1",
                },
            ],
            "failing_count": 2,
            "waived": [],
            "below_threshold": [
                {
                    "advisory": "GHSA-low",
                    "severity": "low",
                    "severity_given": True,
                    "component": "a",
                    "version": "1",
                    "purl": "pkg:pypi/a@1",
                },
            ],
            "below_threshold_count": 1,
        },
    )
    body = text(signed_in(client, personas.security).get(f"/releases/{release.pk}/"))
    assert "1 critical</span>" in body and "1 high</span>" in body and "1 low</span>" in body
    assert body.index("GHSA-crit") < body.index("OSV-unrated") < body.index("GHSA-low")
    assert "2 at or above high and not waived" in body
    assert 'OSV-unrated</td><td><span class="sev sev-high">high</span> (unrated)' in body
    assert "Check vulnerabilities failed: 1 critical" in body


def test_check_results_are_listed_with_their_details(client, personas, release):
    from tests.web.helpers import record_check

    record_check(
        release,
        "licenses",
        status="failed",
        summary="AGPL found",
        details={"denied": ["AGPL-3.0-only"]},
    )
    body = text(signed_in(client, personas.auditor).get(f"/releases/{release.pk}/"))
    assert "<td>licenses</td>" in body and "Failed" in body and "AGPL found" in body
    assert "AGPL-3.0-only" in body


def test_what_changed_since_the_previous_release(client, personas, release):
    p = personas
    later = make_release(p.project, p.requester, version="1.1.0")
    actor = p.actor("requester")
    flows = document("data_flow_map")
    flows["flows"].append(
        {
            "source": "feedback",
            "destination": "analytics",
            "data_classes": [],
            "third_party": False,
            "customer_data": "synthetic",
            "cached": False,
        }
    )
    flows["flows"][0]["cached"] = False
    evidence_attach(release=later, actor=actor, kind="data_flow_map", document=flows)
    sbom = document("sbom")
    sbom["components"][0]["version"] = "2.32.4"
    sbom["components"].pop(1)
    evidence_attach(release=later, actor=actor, kind="sbom", document=sbom)
    identities = document("agent_access_review")
    evidence_attach(release=later, actor=actor, kind="agent_access_review", document=identities)
    body = text(signed_in(client, p.security).get(f"/releases/{later.pk}/"))
    assert "Since 1.0.0" in body
    assert "added: feedback → analytics" in body
    assert "changed: support tickets → vector store" in body
    assert "changed: requests 2.32.3 → 2.32.4" in body
    assert "removed: support-intent-classifier" in body
    assert "No change." in body  # identities
    assert "Missing" in body  # monitoring plan and pipeline review not attached yet


# 13, and 2 for the holds and break-glasses panel.
@pytest.mark.parametrize(
    ("name", "status", "queries"), [*((n, 200, 15) for n in READERS), ("outsider", 404, 4)]
)
def test_release_page_query_count_is_pinned(
    client, personas, release, name, status, queries, django_assert_num_queries
):
    make_release(personas.project, personas.requester, version="0.9.0")  # a previous one to diff
    signed_in(client, getattr(personas, name))
    with django_assert_num_queries(queries):
        assert client.get(f"/releases/{release.pk}/").status_code == status


def test_evidence_form_and_new_release_query_counts_are_pinned(
    client, personas, release, django_assert_num_queries
):
    signed_in(client, personas.requester)
    with django_assert_num_queries(5):
        assert client.get(f"/releases/{release.pk}/evidence/data_flow_map/").status_code == 200
    with django_assert_num_queries(5):
        assert client.get("/releases/new/").status_code == 200


def test_release_page_query_count_does_not_grow_with_evidence_and_checks(
    client, personas, release, django_assert_num_queries
):
    p = personas
    big = document("sbom")
    big["components"] = [
        {"type": "library", "name": f"lib{i}", "version": "1.0.0", "purl": f"pkg:pypi/lib{i}@1.0.0"}
        for i in range(1000)
    ]
    evidence_attach(release=release, actor=p.actor("requester"), kind="sbom", document=big)
    release.refresh_from_db()
    CheckResult.objects.bulk_create(
        CheckResult(
            release=release,
            check_name="external_ci",
            manifest_digest=release.manifest_digest,
            status="passed",
            source=CheckResult.Source.CI,
            external_id=f"run-{i}",
            summary=f"run {i}",
        )
        for i in range(50)
    )
    signed_in(client, p.security)
    with django_assert_num_queries(15):
        response = client.get(f"/releases/{release.pk}/")
    assert 'class="sbom-count">1000</strong>' in text(response)


@pytest.mark.parametrize(
    ("name", "queries"),
    # "Your projects" adds 2 (the projects the person holds a role on, then their open counts).
    # Reviews due add 1 for everyone and 1 more for a security holder; governance requests add 1
    # for everyone (where they review) and 1 for a reviewer (the requests that wait on them).
    [
        ("requester", 16),
        ("security", 15),
        ("sme", 14),
        ("admin", 12),
        ("auditor", 12),
        ("outsider", 8),
    ],
)
def test_home_query_count_is_pinned(
    client, personas, release, name, queries, django_assert_num_queries
):
    signed_in(client, getattr(personas, name))
    with django_assert_num_queries(queries):
        assert client.get("/").status_code == 200


def test_home_shows_a_reviewer_what_waits_on_their_role(client, personas, release):
    p = personas
    body = text(signed_in(client, p.security).get("/"))
    assert f'href="/releases/{release.pk}/">support-assistant 1.0.0</a>' in body
    approval_give(release=release, actor=p.actor("security"), role="security")
    body = text(client.get("/"))
    assert "support-assistant 1.0.0" not in body
    assert "Nothing waits on your review." in body
    # the expert still has it
    assert "support-assistant 1.0.0" in text(signed_in(client, p.sme).get("/"))


def test_home_does_not_ask_a_role_the_policy_does_not_require(client, personas, release):
    from releasegate.releases.services import policy_change

    confirmed(
        policy_change(
            project=personas.project,
            actor=personas.actor("admin"),
            changes={"required_approvals": {"security": 1}},
        ),
        by=personas.security,
    )
    assert "support-assistant 1.0.0" not in text(signed_in(client, personas.sme).get("/"))


def test_home_shows_a_requester_what_each_release_is_blocked_on(client, personas, release):
    p = personas
    veto_cast(
        release=release,
        actor=p.actor("security"),
        role="security",
        reason="PII leaves to the vendor",
    )
    body = text(signed_in(client, p.requester).get("/"))
    assert "Vetoed by security (security): PII leaves to the vendor" in body
    assert "Needs 1 more sme approval." in body
    assert "Checks not yet run on the current evidence: sbom_valid, vulnerabilities," in body
    assert "need your decision" not in body  # the requester reviews nowhere


def test_release_list_filters_and_searches(client, personas, release):
    p = personas
    draft = make_release(p.project, p.requester, version="2.0.0-rc1")
    cleared = submitted_release(p.project, p.requester, version="1.2.0")
    pass_checks(cleared)
    approval_give(release=cleared, actor=p.actor("security"), role="security")
    approval_give(release=cleared, actor=p.actor("sme"), role="sme")
    signed_in(client, p.auditor)

    def versions(query: str) -> set[str]:
        body = text(client.get(f"/releases/?{query}"))
        return {v for v in ("1.0.0", "2.0.0-rc1", "1.2.0") if f"support-assistant {v}<" in body}

    assert versions("") == {"1.0.0", "2.0.0-rc1", "1.2.0"}
    assert versions("state=draft") == {"2.0.0-rc1"}
    assert versions("gate=cleared") == {"1.2.0"}
    assert versions("gate=blocked") == {"1.0.0", "2.0.0-rc1"}
    assert versions("q=rc1") == {"2.0.0-rc1"}
    assert versions(f"q={draft.artifact_digest[7:30]}") == {"2.0.0-rc1"}
    assert versions("project=nope") == {"1.0.0", "2.0.0-rc1", "1.2.0"}


@pytest.mark.parametrize("gate", ["", "cleared"])
def test_a_nul_in_the_release_search_is_a_400_naming_it(client, personas, gate):
    make_release(personas.project, personas.requester)

    response = signed_in(client, personas.security).get(
        "/releases/", {"q": "1.0\x00", "gate": gate}
    )

    assert response.status_code == 400
    assert "NUL" in response.content.decode()


def test_release_list_query_count_is_bounded_by_the_page_size(
    client, personas, django_assert_num_queries
):
    p = personas
    for i in range(PAGE_SIZE + 3):
        make_release(p.project, p.requester, version=f"0.0.{i}")
    signed_in(client, p.auditor)
    with django_assert_num_queries(6 + 4 * PAGE_SIZE):
        response = client.get("/releases/")
    assert "Older →" in text(response)
    with django_assert_num_queries(6 + 4 * 3):
        assert client.get("/releases/?page=2").status_code == 200


@pytest.mark.parametrize(("name", "shown"), [*((n, 1) for n in READERS), ("outsider", 0)])
def test_release_list_query_count_per_persona(
    client, personas, release, name, shown, django_assert_num_queries
):
    signed_in(client, getattr(personas, name))
    with django_assert_num_queries(4 if name == "outsider" else 6 + 4 * shown):
        body = text(client.get("/releases/"))
    assert ("support-assistant 1.0.0" in body) is bool(shown)


def test_the_gate_filter_says_when_it_stopped_looking(client, personas, monkeypatch):
    from releasegate.web import selectors

    monkeypatch.setattr(selectors, "GATE_FILTER_SCAN", 2)
    for i in range(3):
        make_release(personas.project, personas.requester, version=f"0.0.{i}")
    body = text(signed_in(client, personas.auditor).get("/releases/?gate=blocked"))
    assert "looked at the 2 newest matching releases" in body
    assert "support-assistant 0.0.2<" in body and "support-assistant 0.0.0<" not in body


def test_release_list_query_count_for_one_release(
    client, personas, release, django_assert_num_queries
):
    signed_in(client, personas.requester)
    with django_assert_num_queries(6 + 4):
        assert client.get("/releases/").status_code == 200


def test_audit_timeline_and_json_export(client, personas, release):
    p = personas
    veto_cast(release=release, actor=p.actor("security"), role="security", reason="leaks PII")
    signed_in(client, p.auditor)
    body = text(client.get(f"/releases/{release.pk}/audit/"))
    assert body.index("release_created") < body.index("release_submitted") < body.index("veto_cast")
    assert "leaks PII" in body
    response = client.get(f"/releases/{release.pk}/audit.json")
    assert response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    exported = response.json()
    assert exported["release"]["version"] == "1.0.0"
    actions = [e["action"] for e in exported["events"]]
    assert actions[0] == "release_created" and actions[-1] == "veto_cast"
    assert all(
        e["prev_hash"] == prev["hash"]
        for prev, e in zip(exported["events"], exported["events"][1:])
    )


@pytest.mark.parametrize("name", READERS)
def test_audit_pages_query_counts_are_pinned(
    client, personas, release, name, django_assert_num_queries
):
    signed_in(client, getattr(personas, name))
    with django_assert_num_queries(5):
        assert client.get(f"/releases/{release.pk}/audit/").status_code == 200
    # The download also carries the proof: the chain's head row and its entry hashes.
    with django_assert_num_queries(7):
        assert client.get(f"/releases/{release.pk}/audit.json").status_code == 200


@pytest.mark.parametrize("name", READERS)
def test_project_page_for_members_query_count_pinned(
    client, personas, name, django_assert_num_queries
):
    signed_in(client, getattr(personas, name))
    # The sixth: the governance requests waiting for confirmation; the seventh: which roles came
    # from the IdP.
    with django_assert_num_queries(8):
        response = client.get("/projects/support-assistant/")
    body = text(response)
    assert "Gate policy (version 1)" in body
    assert ("Change the policy" in body) is (name == "admin")
    assert ("Grant a role" in body) is (name == "admin")


def test_project_list_shows_only_visible_projects(client, personas, django_assert_num_queries):
    from tests.conftest import make_personas

    make_personas("other-project", prefix="o-")
    signed_in(client, personas.requester)
    with django_assert_num_queries(4):
        body = text(client.get("/projects/"))
    assert "support-assistant" in body and "other-project" not in body


@pytest.mark.parametrize("name", (*READERS, "outsider"))
def test_tokens_page_query_count_pinned(client, personas, name, django_assert_num_queries):
    signed_in(client, getattr(personas, name))
    with django_assert_num_queries(3):
        assert client.get("/tokens/").status_code == 200


def test_vulnerability_summary_reads_what_the_vulnerabilities_check_writes(
    client, personas, release
):
    """The details come from the real check rule, so a change of their shape fails here."""
    from releasegate.checks.sbom import Component
    from releasegate.checks.vulnerabilities import KnownAffected, evaluate_vulnerabilities
    from tests.web.helpers import record_check

    outcome = evaluate_vulnerabilities(
        components=[Component("requests", "2.32.3", "pkg:pypi/requests@2.32.3", ())],
        affected=[
            KnownAffected(
                advisory_id="GHSA-test-0001",
                aliases=(),
                ecosystem="PyPI",
                name="requests",
                ranges=(),
                versions=frozenset({"2.32.3"}),
                severity="",
            )
        ],
        waivers=[],
        threshold="high",
    )
    record_check(
        release,
        "vulnerabilities",
        status=outcome.status,
        summary=outcome.summary,
        details=outcome.details,
    )
    body = text(signed_in(client, personas.security).get(f"/releases/{release.pk}/"))
    assert "1 at or above high and not waived" in body
    assert "GHSA-test-0001</td>" in body and "(unrated)" in body


def test_one_check_not_yet_run_is_named_on_its_own(client, personas, release):
    from tests.builders import DEFAULT_CHECKS

    pass_checks(release, DEFAULT_CHECKS[1:])
    body = text(signed_in(client, personas.requester).get(f"/releases/{release.pk}/"))
    assert "Check sbom_valid has not run on the current evidence yet." in body
    assert "Checks not yet run" not in body


def test_the_audit_export_is_the_apis_document(client, personas, release):
    signed_in(client, personas.auditor)
    page = client.get(f"/releases/{release.pk}/audit.json").json()
    api = client.get(f"/api/v1/releases/{release.pk}/audit").json()
    assert page == api


def test_changed_evidence_puts_a_release_back_on_the_reviewers_list(client, personas, release):
    p = personas
    approval_give(release=release, actor=p.actor("security"), role="security")
    signed_in(client, p.security)
    assert "support-assistant 1.0.0" not in text(client.get("/"))
    flows = document("data_flow_map")
    flows["flows"].pop()
    evidence_attach(
        release=release, actor=p.actor("requester"), kind="data_flow_map", document=flows
    )
    assert "support-assistant 1.0.0" in text(client.get("/"))


def test_the_release_page_lists_the_same_findings_as_the_api(client, personas):
    """Real data (the PyPA advisories, a real SBOM): the page's list of each check's findings is
    the API's, line for line (both read `releasegate.checks.findings`)."""
    from django.utils.html import escape

    from tests.checks.real_findings import failing_release

    failing = failing_release(personas.project, personas.requester)
    signed_in(client, personas.auditor)
    api = client.get(f"/api/v1/releases/{failing.pk}").json()
    page = text(client.get(f"/releases/{failing.pk}/"))
    checks = [c for c in api["checks"] if c["current"]]
    assert len(checks) == 7
    for check in checks:
        for finding in check["findings"]:
            assert escape(finding["text"]) in page, finding["text"]
        counting = sum(f["counts"] for f in check["findings"])
        assert f"{counting} counting against the gate" in page
