"""The audit exports: a release's trail with its proof, and the project's own trail."""

import json
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from releasegate.accounts.actors import Actor
from releasegate.audit.checkpoint import export_problems, read_checkpoint
from releasegate.audit.models import AuditChain
from releasegate.releases.services import policy_change, role_grant, role_revoke, veto_cast
from tests.builders import make_release, submitted_release
from tests.conftest import make_personas


def _checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "checkpoint.txt"
    call_command("audit_checkpoint", "-o", str(path))
    return path


def test_release_export_carries_chain_seq_hashes_and_proof(personas, person):
    release = submitted_release(personas.project, personas.requester)
    body = person("auditor").request("GET", f"/api/v1/releases/{release.pk}/audit").json()
    chain = AuditChain.objects.get(project_id=personas.project.pk)
    first = body["events"][0]
    assert first["chain"] == "support-assistant" and first["action"] == "release_created"
    assert set(first) >= {"seq", "entry_hash", "prev_hash", "hash", "actor_user_id", "release_id"}
    proof = body["proof"]
    assert (proof["chain"], proof["size"], proof["head_hash"]) == (
        chain.name,
        chain.size,
        chain.head_hash,
    )
    assert proof["from_seq"] == first["seq"]
    assert len(proof["entry_hashes"]) == chain.size - first["seq"] + 1


def test_release_export_verifies_against_a_checkpoint_with_no_database(personas, person, tmp_path):
    release = submitted_release(personas.project, personas.requester)
    other = make_release(personas.project, personas.requester, version="9.9.9")
    path = _checkpoint(tmp_path)
    # Later events, of this release and of another, come after the checkpoint.
    veto_cast(release=release, actor=personas.actor("security"), role="security", reason="PII")
    veto_cast(release=other, actor=personas.actor("security"), role="security", reason="PII")
    body = person("auditor").request("GET", f"/api/v1/releases/{release.pk}/audit").json()
    checkpoint = read_checkpoint(path.read_text())
    covered, problems = export_problems(body, checkpoint)
    assert problems == [] and covered == len(body["events"]) - 1
    export = tmp_path / "export.json"
    export.write_text(json.dumps(body))
    out: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            out.append(text)

        def flush(self) -> None:
            pass

    call_command("verify_audit", "--checkpoint", str(path), "--export", str(export), stdout=Sink())
    assert f"{covered} events verified, 1 newer than the checkpoint" in "".join(out)
    body["events"][1]["actor"] = "someone-else"
    export.write_text(json.dumps(body))
    with pytest.raises(CommandError) as refused:
        call_command("verify_audit", "--checkpoint", str(path), "--export", str(export))
    seq, action = body["events"][1]["seq"], body["events"][1]["action"]
    assert f"event #{seq} ({action}) was altered" in str(refused.value)


def test_release_export_takes_a_fixed_number_of_queries(
    personas, person, django_assert_num_queries
):
    release = submitted_release(personas.project, personas.requester)
    caller = person("auditor")
    url = f"/api/v1/releases/{release.pk}/audit"
    caller.request("GET", url)
    # token, release, the caller's roles, events with their chain, chain head, entry hashes
    with django_assert_num_queries(6):
        assert caller.request("GET", url).status_code == 200


def _project_acts(p) -> None:
    newcomer = get_user_model().objects.create_user("newcomer", password="newcomer-pw-123")
    admin = p.actor("admin")
    for _ in range(3):
        role_grant(project=p.project, user=newcomer, role="sme", actor=admin)
        role_revoke(project=p.project, user=newcomer, role="sme", actor=admin)
    policy_change(project=p.project, actor=admin, changes={"max_approval_age_days": 10})
    make_release(p.project, p.requester)


URL = "/api/v1/projects/support-assistant/audit"


@pytest.mark.parametrize("who", ["auditor", "admin"])
def test_project_trail_lists_events_of_no_release_newest_first(personas, person, who):
    _project_acts(personas)
    body = person(who).request("GET", URL).json()
    assert body["project"] == "support-assistant"
    actions = [e["action"] for e in body["events"]]
    assert actions[:7] == ["policy_changed"] + ["role_revoked", "role_granted"] * 3
    assert "release_created" not in actions
    assert all(e["release_id"] is None for e in body["events"])
    seqs = [e["seq"] for e in body["events"]]
    assert seqs == sorted(seqs, reverse=True)
    assert body["next"] is None


def test_project_trail_pages_and_filters_by_action(personas, person):
    _project_acts(personas)
    auditor = person("auditor")
    page = auditor.request("GET", f"{URL}?action=role_granted&limit=2").json()
    pages = [page]
    while page["next"] is not None:
        page = auditor.request("GET", page["next"]).json()
        pages.append(page)
    assert [len(p["events"]) for p in pages] == [2, 2, 2, 2]
    granted = [e for p in pages for e in p["events"]]
    assert {e["action"] for e in granted} == {"role_granted"}
    seqs = [e["seq"] for e in granted]
    # The fixture's five grants and the three here, each once, newest first.
    assert seqs == sorted(set(seqs), reverse=True) and len(seqs) == 8


@pytest.mark.parametrize("who", ["requester", "security", "sme"])
def test_project_trail_is_refused_to_other_roles(personas, person, who):
    response = person(who).request("GET", URL)
    assert response.status_code == 403


def test_project_trail_is_not_found_for_outsiders_and_other_projects(personas, person, service):
    other = make_personas("other-project", prefix="o-")
    assert person("outsider").request("GET", URL).status_code == 404
    other_auditor = person("auditor")
    other_url = f"/api/v1/projects/{other.project.slug}/audit"
    assert other_auditor.request("GET", other_url).status_code == 404
    assert service("gate:read").request("GET", other_url).status_code == 404
    assert person("auditor").request("GET", "/api/v1/projects/nope/audit").status_code == 404


@pytest.mark.parametrize(
    "query, field",
    [("limit=0", "limit"), ("limit=201", "limit"), ("limit=x", "limit"), ("before=-1", "before")],
)
def test_project_trail_names_a_bad_parameter(personas, person, query, field):
    response = person("auditor").request("GET", f"{URL}?{query}")
    assert response.status_code == 400
    assert field in {e["field"] for e in response.json()["errors"]}


def test_project_trail_takes_a_fixed_number_of_queries(personas, person, django_assert_num_queries):
    _project_acts(personas)
    caller = person("auditor")
    caller.request("GET", URL)
    # token, project, the caller's roles, one page of events with their chain
    with django_assert_num_queries(4):
        assert len(caller.request("GET", f"{URL}?limit=5").json()["events"]) == 5
    with django_assert_num_queries(4):
        assert caller.request("GET", URL).status_code == 200


def test_system_acts_of_no_project_go_to_the_global_chain(personas):
    from releasegate.audit.services import audit_record

    event = audit_record(action="key_rotated", actor=Actor.system_actor())
    assert (event.chain.name, event.seq, event.project_id) == ("_global", 1, None)
