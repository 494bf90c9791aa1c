"""The demo of the product brief: two projects, their people, and releases that tell the story.

Every release is made by the real services (create, attach, submit, approve, veto, lift, promote)
and its checks are computed by the same claim, compute and complete functions the worker runs,
here synchronously so the demo is whole before the web server starts. The services stamp what they
write with the present; to give the charts weeks of history, each story step then moves the rows
it wrote (created_at, attached_at, submitted_at, approval and veto times, promoted_at, check times)
back to its place in the timeline. Audit events keep the moment they were really written: they are
hash-chained, and moving them would break the chain `verify_audit` checks.
"""

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.checks.advisories import advisories_import
from releasegate.checks.models import CheckResult
from releasegate.checks.runner import compute_check
from releasegate.checks.selectors import current_inputs_digest
from releasegate.checks.services import check_claim, check_complete
from releasegate.checks.tasks import LEASE
from releasegate.releases.models import (
    Approval,
    Evidence,
    GatePolicy,
    Project,
    Promotion,
    Release,
    Veto,
)
from releasegate.releases.services import (
    approval_give,
    evidence_attach,
    policy_change,
    project_create,
    release_create,
    release_promote,
    release_submit,
    role_grant,
    veto_cast,
    veto_lift,
)

DEMO_PROJECT = "support-assistant"
SECOND_PROJECT = "claims-triage"
# A small sample of real PyPI advisories (see releasegate/checks/data/NOTICE.md), so the demo's
# vulnerabilities check has a database to match against; it fails closed on an empty one.
DEMO_ADVISORIES = Path(__file__).resolve().parent.parent / "checks" / "data" / "osv-demo-sample.zip"


@dataclass(frozen=True)
class DemoPerson:
    username: str
    project: str | None
    role: str | None
    what: str


DEMO_PEOPLE = (
    DemoPerson("alice", DEMO_PROJECT, "requester", "requester (product manager)"),
    DemoPerson("sam", DEMO_PROJECT, "security", "security lead"),
    DemoPerson("erin", DEMO_PROJECT, "sme", "subject-matter expert"),
    DemoPerson("olga", DEMO_PROJECT, "admin", "project admin"),
    DemoPerson("audrey", DEMO_PROJECT, "auditor", "auditor"),
    DemoPerson("oscar", None, None, "signed in, but no role on either project"),
    DemoPerson("ravi", SECOND_PROJECT, "requester", f"requester on {SECOND_PROJECT}"),
    DemoPerson("sofia", SECOND_PROJECT, "security", f"security lead on {SECOND_PROJECT}"),
    DemoPerson("elena", SECOND_PROJECT, "sme", f"subject-matter expert on {SECOND_PROJECT}"),
)

VETO_REASON = (
    "The new ticket-search tool reads every customer's tickets: the access review grants "
    "tickets:* with no tenant scope. Scope it to the caller's tenant first."
)


def demo_password(username: str) -> str:
    return f"{username}-releasegate-demo"


# Evidence ----------------------------------------------------------------------------------------

_SBOM_BASE: list[dict[str, Any]] = [
    {
        "type": "library",
        "name": "requests",
        "version": "2.32.3",
        "purl": "pkg:pypi/requests@2.32.3",
        "licenses": [{"license": {"id": "Apache-2.0"}}],
    },
    {
        "type": "library",
        "name": "jinja2",
        "version": "3.1.4",
        "purl": "pkg:pypi/jinja2@3.1.4",
        "licenses": [{"license": {"id": "BSD-3-Clause"}}],
    },
    {"type": "machine-learning-model", "name": "support-intent-classifier", "version": "3.1.0"},
]
# langchain 0.0.300 is affected by real advisories in the bundled sample (PYSEC-2023-162, ...).
VULNERABLE_COMPONENT: dict[str, Any] = {
    "type": "library",
    "name": "langchain",
    "version": "0.0.300",
    "purl": "pkg:pypi/langchain@0.0.300",
    "licenses": [{"license": {"id": "MIT"}}],
}
OPEN_MCP_SERVER: dict[str, Any] = {
    "name": "ticket-search-mcp",
    "kind": "mcp_server",
    "permissions": ["read"],
    "resources": ["tickets"],
    "auth": "none",
}


def _evidence(reviewed: datetime) -> dict[str, dict[str, Any]]:
    return {
        "pipeline_review": {
            "reviewer": "Sam Security",
            "reviewed_at": reviewed.date().isoformat(),
            "scope": ["training", "serving", "feature-store"],
            "findings": [
                {"id": "PR-1", "severity": "low", "title": "Verbose logs", "status": "open"},
                {
                    "id": "PR-2",
                    "severity": "high",
                    "title": "Unpinned image",
                    "status": "mitigated",
                },
            ],
        },
        "data_flow_map": {
            "flows": [
                {
                    "source": "support tickets",
                    "destination": "vector store",
                    "data_classes": ["pii"],
                    "third_party": False,
                    "customer_data": "real",
                    "cached": True,
                },
                {
                    "source": "prompt",
                    "destination": "LLM provider",
                    "data_classes": ["pii"],
                    "third_party": True,
                    "customer_data": "real",
                    "cached": False,
                    "agreement_ref": "DPA-12",
                },
            ]
        },
        "sbom": {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "components": copy.deepcopy(_SBOM_BASE),
        },
        "monitoring_plan": {
            "owner": "ml-platform on-call",
            "escalation": "page #support-ai-oncall, then the security lead",
            "signals": [
                {
                    "name": "toxic output rate",
                    "kind": "output_anomaly",
                    "threshold": "> 0.5% over 10 min",
                    "runbook": "https://runbooks.example.com/toxic-output",
                },
                {
                    "name": "PII in responses",
                    "kind": "data_exposure",
                    "threshold": "any",
                    "runbook": "https://runbooks.example.com/pii-leak",
                },
            ],
        },
        "agent_access_review": {
            "identities": [
                {
                    "name": "ticket-triage-agent",
                    "kind": "agent",
                    "permissions": ["read"],
                    "resources": ["tickets"],
                    "auth": "oauth",
                },
                {
                    "name": "crm-mcp",
                    "kind": "mcp_server",
                    "permissions": ["read", "write"],
                    "resources": ["crm.contacts"],
                    "auth": "mtls",
                    "justification": "updates contact preferences on request",
                },
            ]
        },
    }


# The story ---------------------------------------------------------------------------------------


class Story:
    """Acts on one project through the services, then moves each written row to its moment."""

    def __init__(self, project: Project, people: dict[str, User], now: datetime) -> None:
        self.project = project
        self.people = people
        self.now = now
        # Applied once the story is told: moved earlier at once, an approval would be too old for
        # the promotion that follows it in the story.
        self.moves: list[tuple[QuerySet[Any], dict[str, datetime]]] = []

    def move(self, rows: QuerySet[Any], **moments: datetime) -> None:
        self.moves.append((rows, moments))

    def finish(self) -> None:
        for rows, moments in self.moves:
            rows.update(**moments)

    def ago(self, days: float) -> datetime:
        return self.now - timedelta(days=days)

    def actor(self, username: str) -> Actor:
        return Actor.for_user(self.people[username])

    def release(
        self,
        version: str,
        *,
        by: str,
        days_ago: float,
        environment: str = "production",
        summary: str,
        evidence: dict[str, dict[str, Any]] | None = None,
    ) -> Release:
        at = self.ago(days_ago)
        release = release_create(
            project=self.project,
            actor=self.actor(by),
            version=version,
            artifact_digest="sha256:" + _hex(f"{self.project.slug}-{version}"),
            environment=environment,
            summary=summary,
        )
        self.move(Release.objects.filter(pk=release.pk), created_at=at)
        for kind, document in (evidence or _evidence(at - timedelta(days=2))).items():
            self.attach(release, kind, document, by=by, at=at + timedelta(hours=1))
        return release

    def attach(
        self, release: Release, kind: str, document: dict[str, Any], *, by: str, at: datetime
    ) -> None:
        evidence = evidence_attach(
            release=release, actor=self.actor(by), kind=kind, document=document
        )
        self.move(Evidence.objects.filter(pk=evidence.pk), attached_at=at)

    def submit(self, release: Release, *, by: str, at: datetime) -> None:
        release_submit(release=release, actor=self.actor(by))
        self.move(Release.objects.filter(pk=release.pk), submitted_at=at)
        self.run_checks(release, at=at + timedelta(minutes=20))

    def run_checks(self, release: Release, *, at: datetime) -> None:
        """Every required check, computed and recorded as a worker's run_check does."""
        release.refresh_from_db()
        policy = self.project.current_policy
        assert policy is not None
        for check in policy.required_checks:
            key = {
                "release_id": release.pk,
                "check": check,
                "manifest_digest": release.manifest_digest,
            }
            inputs = current_inputs_digest(
                release_id=release.pk, check=check, manifest=release.manifest_digest
            )
            claim = check_claim(**key, inputs_digest=inputs, lease=LEASE)
            if claim is None:
                continue
            outcome, inputs = compute_check(
                release_id=release.pk, check=check, manifest=release.manifest_digest
            )
            check_complete(
                **key,
                attempt=claim.attempt,
                inputs_digest=inputs,
                status=outcome.status,
                summary=outcome.summary,
                details=outcome.details,
                valid_until=outcome.valid_until,
            )
        self.move(
            CheckResult.objects.filter(
                release_id=release.pk, manifest_digest=release.manifest_digest
            ),
            created_at=at,
            updated_at=at,
        )

    def approve(self, release: Release, *, by: str, role: str, at: datetime) -> None:
        approval = approval_give(
            release=release, actor=self.actor(by), role=role, comment="Evidence reviewed."
        )
        self.move(Approval.objects.filter(pk=approval.pk), created_at=at)

    def veto(self, release: Release, *, by: str, role: str, reason: str, at: datetime) -> Veto:
        veto = veto_cast(release=release, actor=self.actor(by), role=role, reason=reason)
        self.move(Veto.objects.filter(pk=veto.pk), created_at=at)
        return veto

    def lift(self, veto: Veto, *, by: str, reason: str, at: datetime) -> None:
        veto_lift(veto=veto, actor=self.actor(by), reason=reason)
        self.move(Veto.objects.filter(pk=veto.pk), lifted_at=at)

    def promote(self, release: Release, *, by: str, at: datetime) -> None:
        release_promote(release=release, actor=self.actor(by))
        self.move(Promotion.objects.filter(release_id=release.pk), promoted_at=at)

    def shipped(
        self,
        version: str,
        *,
        days_ago: float,
        environment: str,
        summary: str,
        waits: tuple[float, float, float] = (0.5, 1.0, 1.5),
    ) -> Release:
        """A release that went all the way: sme, then security, then promotion `waits` days after
        it was requested."""
        release = self.release(
            version, by="alice", days_ago=days_ago, environment=environment, summary=summary
        )
        requested = self.ago(days_ago) + timedelta(hours=2)
        self.submit(release, by="alice", at=requested)
        self.approve(release, by="erin", role="sme", at=requested + timedelta(days=waits[0]))
        self.approve(release, by="sam", role="security", at=requested + timedelta(days=waits[1]))
        self.promote(release, by="alice", at=requested + timedelta(days=waits[2]))
        return release


def _hex(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _support_assistant(story: Story) -> None:
    s = story
    s.shipped(
        "1.0.0",
        days_ago=50,
        environment="production",
        summary="First production release.",
        waits=(1.0, 2.5, 3.0),
    )
    s.shipped(
        "1.1.0",
        days_ago=45,
        environment="production",
        summary="Answers in French and German.",
        waits=(0.8, 1.9, 2.2),
    )
    s.shipped(
        "1.2.0",
        days_ago=38,
        environment="production",
        summary="Ticket summaries for the on-call rota.",
        waits=(0.4, 1.2, 1.4),
    )
    # A veto that was lifted once the evidence was fixed.
    r125 = s.release(
        "1.2.5",
        by="alice",
        days_ago=31,
        environment="staging",
        summary="Try the new retrieval index on staging.",
    )
    requested = s.ago(31) + timedelta(hours=2)
    s.submit(r125, by="alice", at=requested)
    veto = s.veto(
        r125,
        by="erin",
        role="sme",
        at=requested + timedelta(hours=5),
        reason="The monitoring plan's runbook for PII leaks points to an empty page.",
    )
    s.lift(
        veto,
        by="erin",
        at=requested + timedelta(days=1, hours=2),
        reason="The runbook is written now; checked it with the on-call lead.",
    )
    s.approve(r125, by="erin", role="sme", at=requested + timedelta(days=1, hours=3))
    s.approve(r125, by="sam", role="security", at=requested + timedelta(days=2))
    s.promote(r125, by="alice", at=requested + timedelta(days=2, hours=4))

    s.shipped(
        "1.3.0",
        days_ago=24,
        environment="staging",
        summary="Escalation to a human on low confidence.",
        waits=(0.6, 2.8, 3.1),
    )

    # Requested weeks ago; erin approved, sam never got to it, and erin's approval has expired.
    r131 = s.release(
        "1.3.1", by="alice", days_ago=19, summary="Hotfix: retry the LLM provider on 429."
    )
    requested = s.ago(19) + timedelta(hours=2)
    s.submit(r131, by="alice", at=requested)
    s.approve(r131, by="erin", role="sme", at=requested + timedelta(days=1))

    # Evidence complete, checks passed, approved by erin: waiting on sam.
    r140 = s.release(
        "1.4.0", by="alice", days_ago=6, summary="Suggested replies for billing tickets."
    )
    requested = s.ago(6) + timedelta(hours=2)
    s.submit(r140, by="alice", at=requested)
    s.approve(r140, by="erin", role="sme", at=requested + timedelta(days=1, hours=3))

    # Vetoed by sam on the canary; the veto carries forward to 1.4.2, the attempted fix, and to
    # every release of the canary not promoted when it was cast.
    r141 = s.release(
        "1.4.1",
        by="alice",
        days_ago=4,
        environment="canary",
        summary="Ticket search tool for the agent.",
    )
    requested = s.ago(4) + timedelta(hours=2)
    s.submit(r141, by="alice", at=requested)
    s.veto(r141, by="sam", role="security", reason=VETO_REASON, at=requested + timedelta(hours=20))
    r142 = s.release(
        "1.4.2",
        by="alice",
        days_ago=2,
        environment="canary",
        summary="Ticket search tool, with a narrower prompt.",
    )
    s.submit(r142, by="alice", at=s.ago(2) + timedelta(hours=2))

    # erin approved 1.5.0, then alice replaced the SBOM: the approval is stale, and the new SBOM
    # brings in a langchain with real advisories; the access review adds an MCP server with no auth.
    first = s.ago(3)
    evidence = _evidence(first - timedelta(days=2))
    evidence["agent_access_review"]["identities"].append(copy.deepcopy(OPEN_MCP_SERVER))
    r150 = s.release(
        "1.5.0",
        by="alice",
        days_ago=3,
        environment="staging",
        evidence=evidence,
        summary="Agentic ticket triage with a ticket-search MCP server.",
    )
    s.submit(r150, by="alice", at=first + timedelta(hours=2))
    s.approve(r150, by="erin", role="sme", at=first + timedelta(hours=9))
    sbom = copy.deepcopy(evidence["sbom"])
    sbom["components"].append(copy.deepcopy(VULNERABLE_COMPONENT))
    s.attach(r150, "sbom", sbom, by="alice", at=s.ago(1))
    s.run_checks(r150, at=s.ago(1) + timedelta(minutes=20))


def _claims_triage(story: Story) -> None:
    s = story
    for version, days, waits in (("0.8.0", 33, (1.0, 1.5, 2.0)), ("0.9.0", 17, (0.5, 2.0, 2.5))):
        release = s.release(version, by="ravi", days_ago=days, summary=f"Claims triage {version}.")
        requested = s.ago(days) + timedelta(hours=2)
        s.submit(release, by="ravi", at=requested)
        s.approve(release, by="elena", role="sme", at=requested + timedelta(days=waits[0]))
        s.approve(release, by="sofia", role="security", at=requested + timedelta(days=waits[1]))
        s.promote(release, by="ravi", at=requested + timedelta(days=waits[2]))
    release = s.release("1.0.0", by="ravi", days_ago=2, summary="Claims triage for motor claims.")
    s.submit(release, by="ravi", at=s.ago(2) + timedelta(hours=2))


def _people() -> dict[str, User]:
    User = get_user_model()
    people = {}
    for person in DEMO_PEOPLE:
        user, created = User.objects.get_or_create(
            username=person.username, defaults={"email": f"{person.username}@example.com"}
        )
        if created:
            user.set_password(demo_password(person.username))
            user.save()
        people[person.username] = user
    return people


def _project(slug: str, name: str, people: dict[str, User]) -> tuple[Project, bool]:
    system = Actor.system_actor()
    project = Project.objects.filter(slug=slug).first()
    created = project is None
    if project is None:
        # support-assistant also deploys to a canary: where sam's veto of 1.4.1 lands, so that
        # it carries forward to 1.4.2 there without reaching the releases bound for production.
        environments = ["production", "staging", "canary"] if slug == DEMO_PROJECT else None
        project = project_create(
            slug=slug,
            name=name,
            actor=system,
            policy={"environments": environments} if environments else None,
        )
    for person in DEMO_PEOPLE:
        if person.project == slug and person.role is not None:
            role_grant(
                project=project, user=people[person.username], role=person.role, actor=system
            )
    return project, created


@transaction.atomic
def seed_demo(*, now: datetime | None = None) -> Project:
    """Create the demo projects, people and releases. Run again, it completes missing people and
    roles and leaves the story as it is (`reset_demo` rebuilds it)."""
    now = now or timezone.now()
    people = _people()
    advisories_import(path=DEMO_ADVISORIES)
    project, created = _project(DEMO_PROJECT, "Support assistant", people)
    if created:
        story = Story(project, people, now)
        story.move(Project.objects.filter(pk=project.pk), created_at=story.ago(60))
        story.move(GatePolicy.objects.filter(project=project), created_at=story.ago(60))
        new = policy_change(
            project=project,
            actor=Actor.for_user(people["olga"]),
            changes={"license_denylist": ["AGPL-3.0-only", "SSPL-1.0", "BUSL-1.1"]},
            note="Business Source License added to the denylist",
        )
        story.move(GatePolicy.objects.filter(pk=new.pk), created_at=story.ago(58))
        _support_assistant(story)
        story.finish()
    second, created = _project(SECOND_PROJECT, "Claims triage", people)
    if created:
        story = Story(second, people, now)
        story.move(Project.objects.filter(pk=second.pk), created_at=story.ago(40))
        story.move(GatePolicy.objects.filter(project=second), created_at=story.ago(40))
        _claims_triage(story)
        story.finish()
    return project


def reset_demo(*, now: datetime | None = None) -> Project:
    """Empty the whole database (as `manage.py flush` does) and seed the demo again. Only for the
    demo's own database: it deletes everything, the audit trail included."""
    call_command("flush", interactive=False, verbosity=0)
    return seed_demo(now=now)
