"""Promotion is atomic under a row lock: real concurrent connections on PostgreSQL.

Two long-lived threads, each with its own database connection, meet at a barrier before every
round and then act on the same fresh cleared release at once.
"""

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.audit.models import AuditEvent
from releasegate.checks.models import CheckResult
from releasegate.checks.services import check_result_record
from releasegate.errors import Conflict
from releasegate.releases.evidence import manifest_digest
from releasegate.releases.models import Approval, Promotion, Release, Veto
from releasegate.releases.selectors import gate_release_queryset
from releasegate.releases.services import policy_change, release_promote, veto_cast
from tests.builders import digest_of
from tests.releases.gatehelpers import codes, decide

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 200


def _cleared_releases(p: Any, n: int, tag: str) -> list[int]:
    """n releases in review with their one required approval. A policy that needs only a security
    approval keeps each round cheap; what races is the lock, not the evidence. Each release has
    its own environment and artifact, so a carry-forward veto in one round cannot reach the next."""
    policy_change(
        project=p.project,
        actor=p.actor("admin"),
        changes={
            "required_items": [],
            "required_checks": [],
            "required_approvals": {"security": 1},
        },
    )
    now = timezone.now()
    releases = Release.objects.bulk_create(
        Release(
            project=p.project,
            version=f"{tag}-{i}",
            artifact_digest=digest_of(f"{tag}-{i}"),
            environment=f"{tag}-{i}",
            requester=p.requester,
            state=Release.State.IN_REVIEW,
            submitted_at=now,
            manifest_digest=manifest_digest(artifact_digest=digest_of(f"{tag}-{i}"), evidence={}),
        )
        for i in range(n)
    )
    Approval.objects.bulk_create(
        Approval(release=r, role="security", user=p.security, manifest_digest=r.manifest_digest)
        for r in releases
    )
    ids = [r.pk for r in releases]
    assert decide(ids[0]).cleared and decide(ids[-1]).cleared
    return ids


def _race(ids: list[int], *acts: Callable[[Release], None]) -> list[list[str]]:
    """Run each act on every release, round by round, one thread per act; the outcome of each
    act per round is "ok" or the refusal's code."""
    barrier = threading.Barrier(len(acts))
    outcomes: list[list[str]] = [[] for _ in acts]
    failures: list[BaseException] = []

    def worker(index: int, act: Callable[[Release], None]) -> None:
        try:
            # Loaded in this thread's own connection, before the rounds start.
            releases = list(gate_release_queryset().filter(pk__in=ids).order_by("pk"))
            for release in releases:
                barrier.wait(timeout=30)
                try:
                    act(release)
                    outcomes[index].append("ok")
                except Conflict as refused:
                    outcomes[index].append(refused.code)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, act)) for i, act in enumerate(acts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    assert not failures, failures
    return outcomes


def test_promote_racing_a_veto_never_promotes_after_the_veto(personas):
    """A promote, a veto and a worker recording a check result, all on the same release at once,
    every round: no deadlock, no lost act, never a promotion after the veto."""
    p = personas
    ids = _cleared_releases(p, ROUNDS, "pv")
    promoter, vetoer, worker = p.actor("requester"), p.actor("security"), Actor.system_actor()

    def promote(release: Release) -> None:
        release_promote(release=release, actor=promoter)

    def veto(release: Release) -> None:
        veto_cast(release=release, actor=vetoer, role="security", reason="found a leak")

    def record_check(release: Release) -> None:
        # A check the policy does not require: it races for the same locks, not for the answer.
        check_result_record(
            release=release, actor=worker, check="licenses", status="passed", summary="ok"
        )

    promoted, vetoed, recorded = _race(ids, promote, veto, record_check)

    # A veto on a promoted release is legal, so the veto always lands; so does the check result.
    assert vetoed == ["ok"] * ROUNDS
    assert recorded == ["ok"] * ROUNDS
    assert CheckResult.objects.filter(release_id__in=ids, check_name="licenses").count() == ROUNDS
    assert set(promoted) <= {"ok", "blocked"}
    promotions = {x.release_id: x for x in Promotion.objects.filter(release_id__in=ids)}
    vetoes = {v.release_id: v for v in Veto.objects.filter(release_id__in=ids)}
    events = {
        (e.release_id, e.action): e.seq
        for e in AuditEvent.objects.filter(release_id__in=ids, action__in=["promoted", "veto_cast"])
    }
    for release_id, outcome in zip(ids, promoted, strict=True):
        if outcome == "ok":
            # Both succeeded: the promotion must have come first, committed before the veto.
            assert promotions[release_id].promoted_at < vetoes[release_id].created_at
            assert events[(release_id, "promoted")] < events[(release_id, "veto_cast")]
        else:
            assert release_id not in promotions
            assert (release_id, "promoted") not in events
        # After the veto the gate always answers blocked, promoted or not.
        assert codes(decide(release_id)) == ["veto"]
    assert Release.objects.filter(pk__in=ids, state="promoted").count() == len(promotions)
    tally = Counter(promoted)
    print(f"\npromote vs veto over {ROUNDS} rounds: {dict(tally)}")
    # Both orders happened, so the threads really raced (measured: about half each way).
    assert tally["ok"] and tally["blocked"], tally


def test_two_racing_promotions_make_exactly_one(personas):
    p = personas
    rounds = ROUNDS // 4
    ids = _cleared_releases(p, rounds, "pp")
    first, second = p.actor("requester"), Actor.for_user(p.requester)

    outcomes = _race(
        ids,
        lambda release: release_promote(release=release, actor=first),
        lambda release: release_promote(release=release, actor=second),
    )
    for one, other in zip(*outcomes, strict=True):
        assert sorted([one, other]) == ["already_promoted", "ok"]
    assert Promotion.objects.filter(release_id__in=ids).count() == rounds
    assert AuditEvent.objects.filter(release_id__in=ids, action="promoted").count() == rounds
