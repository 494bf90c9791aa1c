"""Waivers: a security holder waives one advisory for one project, with a reason and an expiry."""

from datetime import timedelta

import pytest
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.audit.models import AuditEvent
from releasegate.checks.advisories import advisories_import
from releasegate.checks.models import CheckResult, Waiver
from releasegate.checks.runner import compute_check
from releasegate.checks.selectors import checks_due
from releasegate.checks.tasks import run_check
from releasegate.checks.waivers import advisory_waive, waiver_revoke
from releasegate.errors import Conflict, InvalidInput, NotFound, NotPermitted
from releasegate.releases.selectors import gate_decision, gate_release_queryset
from releasegate.releases.services import evidence_attach
from tests.api.conftest import Caller
from tests.builders import submitted_release
from tests.checks.test_vulnerabilities import CRITICAL, advisory, ecosystem, write_folder
from tests.conftest import make_personas
from tests.releases.gatehelpers import person_with

VULNERABLE_SBOM = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "version": 1,
    "components": [
        {"type": "library", "name": "flask", "version": "0.12", "purl": "pkg:pypi/flask@0.12"}
    ],
}


# A critical advisory on the flask of VULNERABLE_SBOM, known also by its CVE.
FLASK_ADVISORY = advisory(
    "PYSEC-2026-9",
    "PyPI",
    "flask",
    [ecosystem({"introduced": "0"}, {"fixed": "1.0"})],
    aliases=["CVE-2026-0009"],
    **CRITICAL,
)


@pytest.fixture
def release(personas, tmp_path):
    advisories_import(path=write_folder(tmp_path, [FLASK_ADVISORY]))
    release = submitted_release(personas.project, personas.requester)
    evidence_attach(
        release=release, actor=personas.actor("requester"), kind="sbom", document=VULNERABLE_SBOM
    )
    release.refresh_from_db()
    return release


def vulnerabilities(release):
    return compute_check(
        release_id=release.pk, check="vulnerabilities", manifest=release.manifest_digest
    )[0]


def soon(days=30):
    return timezone.now() + timedelta(days=days)


def test_waived_advisory_does_not_fail_the_check_while_the_waiver_lasts(personas, release):
    assert vulnerabilities(release).status == "failed"
    waiver = advisory_waive(
        project=personas.project,
        actor=personas.actor("security"),
        advisory_id="CVE-2026-0009",
        reason="not reachable: we never call send_file",
        expires_at=soon(),
    )
    assert waiver.advisory_id == "PYSEC-2026-9"  # the alias resolves to the advisory
    outcome = vulnerabilities(release)
    assert outcome.status == "passed"
    assert outcome.details["waived"][0]["waiver"] == waiver.pk
    assert outcome.valid_until == waiver.expires_at
    event = AuditEvent.objects.filter(action="advisory_waived").get()
    assert event.data["reason"] == "not reachable: we never call send_file"
    assert event.actor == "security"

    waiver_revoke(
        waiver=waiver, actor=personas.actor("security"), reason="now reachable via /export"
    )
    assert vulnerabilities(release).status == "failed"
    assert AuditEvent.objects.filter(action="waiver_revoked").count() == 1
    with pytest.raises(Conflict):
        waiver_revoke(waiver=waiver, actor=personas.actor("security"), reason="again")


def test_an_expired_waiver_no_longer_counts(personas, release):
    waiver = advisory_waive(
        project=personas.project,
        actor=personas.actor("security"),
        advisory_id="PYSEC-2026-9",
        reason="accepted",
        expires_at=soon(),
    )
    Waiver.objects.filter(pk=waiver.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert vulnerabilities(release).status == "failed"


def test_a_waiver_for_another_project_does_not_count(personas, release):
    other = make_personas("other-project", prefix="o-")
    advisory_waive(
        project=other.project,
        actor=other.actor("security"),
        advisory_id="PYSEC-2026-9",
        reason="their risk",
        expires_at=soon(),
    )
    assert vulnerabilities(release).status == "failed"


def test_a_passed_result_resting_on_a_waiver_is_due_again_when_it_ends(personas, release):
    waiver = advisory_waive(
        project=personas.project,
        actor=personas.actor("security"),
        advisory_id="PYSEC-2026-9",
        reason="accepted",
        expires_at=soon(),
    )
    run_check.apply(args=(release.pk, "vulnerabilities", release.manifest_digest))
    row = CheckResult.objects.get(release=release, check_name="vulnerabilities")
    assert (row.status, row.valid_until) == ("passed", waiver.expires_at)
    assert (release.pk, "vulnerabilities", release.manifest_digest) not in checks_due()
    CheckResult.objects.filter(pk=row.pk).update(valid_until=timezone.now() - timedelta(seconds=1))
    Waiver.objects.filter(pk=waiver.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    # The very next gate query stops counting the pass, before any worker has run again.
    gate = gate_decision(gate_release_queryset().get(pk=release.pk))
    assert {"check": "vulnerabilities", "status": "expired"}.items() <= next(
        b.details for b in gate.blockers if b.details.get("check") == "vulnerabilities"
    ).items()
    assert (release.pk, "vulnerabilities", release.manifest_digest) in checks_due()
    run_check.apply(args=(release.pk, "vulnerabilities", release.manifest_digest))
    assert CheckResult.objects.get(pk=row.pk).status == "failed"


def test_waiving_sets_the_release_vulnerability_result_back_to_pending(personas, release):
    run_check.apply(args=(release.pk, "vulnerabilities", release.manifest_digest))
    assert CheckResult.objects.get(release=release, check_name="vulnerabilities").status == "failed"
    advisory_waive(
        project=personas.project,
        actor=personas.actor("security"),
        advisory_id="PYSEC-2026-9",
        reason="accepted",
        expires_at=soon(),
    )
    assert (
        CheckResult.objects.get(release=release, check_name="vulnerabilities").status == "pending"
    )
    run_check.apply(args=(release.pk, "vulnerabilities", release.manifest_digest))
    assert CheckResult.objects.get(release=release, check_name="vulnerabilities").status == "passed"


@pytest.mark.parametrize("who", ["requester", "sme", "admin", "auditor"])
def test_only_the_security_role_may_waive(personas, release, who):
    with pytest.raises(NotPermitted):
        advisory_waive(
            project=personas.project,
            actor=personas.actor(who),
            advisory_id="PYSEC-2026-9",
            reason="r",
            expires_at=soon(),
        )
    assert not Waiver.objects.exists()


def test_an_outsider_is_told_nothing_exists(personas, release):
    with pytest.raises(NotFound):
        advisory_waive(
            project=personas.project,
            actor=personas.actor("outsider"),
            advisory_id="PYSEC-2026-9",
            reason="r",
            expires_at=soon(),
        )


def test_only_the_security_role_may_revoke(personas, release):
    waiver = advisory_waive(
        project=personas.project,
        actor=personas.actor("security"),
        advisory_id="PYSEC-2026-9",
        reason="accepted",
        expires_at=soon(),
    )
    with pytest.raises(NotPermitted):
        waiver_revoke(waiver=waiver, actor=personas.actor("requester"), reason="I want it gone")
    with pytest.raises(InvalidInput):
        waiver_revoke(waiver=waiver, actor=personas.actor("security"), reason=" ")
    assert Waiver.objects.get().revoked_at is None


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"reason": ""}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": None}, "reason"),
        ({"advisory_id": "PYSEC-0000-0"}, "advisory_id"),
        ({"advisory_id": ""}, "advisory_id"),
        ({"expires_at": None}, "expires_at"),
        ({"expires_at": "2030-01-01"}, "expires_at"),
        ({"expires_at": timezone.now() - timedelta(minutes=1)}, "expires_at"),
        ({"expires_at": timezone.now() + timedelta(days=400)}, "expires_at"),
    ],
)
def test_invalid_waiver_is_refused_naming_the_field(personas, release, changes, field):
    args = {"advisory_id": "PYSEC-2026-9", "reason": "accepted", "expires_at": soon(), **changes}
    with pytest.raises(InvalidInput) as raised:
        advisory_waive(project=personas.project, actor=personas.actor("security"), **args)
    assert [e.field for e in raised.value.errors] == [field]
    assert not Waiver.objects.exists()
    assert not AuditEvent.objects.filter(action="advisory_waived").exists()


# Separation of duties, through the API as the attack went: a requester who also holds security
# may not waive an advisory that affects their own release; another security holder may.
WAIVERS = "/api/v1/projects/support-assistant/waivers"


@pytest.fixture
def requester_with_security(personas, tmp_path):
    django_advisory = advisory(
        "PYSEC-2026-10",
        "PyPI",
        "django",
        [ecosystem({"introduced": "0"}, {"fixed": "9.0"})],
        **CRITICAL,
    )
    advisories_import(path=write_folder(tmp_path, [FLASK_ADVISORY, django_advisory]))
    bob = person_with(personas, "bob", "requester", "security")
    release = submitted_release(personas.project, bob)
    evidence_attach(
        release=release, actor=Actor.for_user(bob), kind="sbom", document=VULNERABLE_SBOM
    )
    return bob


def body(advisory_id: str) -> dict[str, str]:
    return {
        "advisory_id": advisory_id,
        "reason": "not reachable",
        "expires_at": soon().isoformat(),
    }


@pytest.mark.parametrize("named_as", ["PYSEC-2026-9", "CVE-2026-0009"])
def test_a_requester_holding_security_cannot_waive_an_advisory_of_their_own_release(
    personas, requester_with_security, named_as
):
    response = Caller("bob", user=requester_with_security).request("POST", WAIVERS, body(named_as))
    assert response.status_code == 403
    assert response.json()["code"] == "requester_cannot_waive"
    assert not Waiver.objects.exists()


def test_they_may_waive_an_advisory_that_affects_none_of_their_releases(
    personas, requester_with_security
):
    response = Caller("bob", user=requester_with_security).request(
        "POST", WAIVERS, body("PYSEC-2026-10")
    )
    assert response.status_code == 201


def test_another_security_holder_may_waive_it(personas, requester_with_security):
    response = Caller("security", user=personas.security).request(
        "POST", WAIVERS, body("PYSEC-2026-9")
    )
    assert response.status_code == 201
