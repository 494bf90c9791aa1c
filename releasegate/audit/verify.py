"""Recomputing the audit trail: every chain from its first event to its head row."""

from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import Max, Subquery

from releasegate.audit.models import GENESIS_HASH, AuditChain, AuditEvent
from releasegate.audit.services import entry_hash, link_hash


@dataclass(frozen=True)
class ChainProblem:
    chain: str
    seq: int
    message: str

    def __str__(self) -> str:
        return f"chain {self.chain}: {self.message}"


@dataclass(frozen=True)
class TrailReport:
    events: int
    chains: int
    problems: list[ChainProblem]


def _events(chain: AuditChain, batch_size: int) -> Iterator[AuditEvent]:
    """The chain's events up to its head as read, in order (later appends are not waited for)."""
    last = 0
    while True:
        batch = list(
            AuditEvent.objects.filter(chain=chain, seq__gt=last, seq__lte=chain.size).order_by(
                "seq"
            )[:batch_size]
        )
        if not batch:
            return
        yield from batch
        last = batch[-1].seq


def verify_one(chain: AuditChain, *, batch_size: int = 2000) -> tuple[int, ChainProblem | None]:
    """Recompute one chain. Returns how many events fit and the first that does not."""
    prev_hash = GENESIS_HASH
    expected = 1

    def problem(seq: int, message: str) -> tuple[int, ChainProblem]:
        return expected - 1, ChainProblem(chain.name, seq, message)

    for event in _events(chain, batch_size):
        if event.seq != expected:
            return problem(expected, f"event #{expected} is missing (next present is #{event.seq})")
        entry = entry_hash(event, chain=chain.name)
        if event.prev_hash != prev_hash:
            if entry == event.entry_hash and link_hash(event.prev_hash, entry) == event.hash:
                # This event is intact and chains to what its predecessor used to be: the
                # predecessor was altered and its hashes recomputed to hide it.
                return problem(
                    event.seq - 1,
                    f"event #{event.seq - 1} was altered (event #{event.seq} no longer chains "
                    "to it)",
                )
            return problem(
                event.seq, f"event #{event.seq} does not chain to event #{event.seq - 1}"
            )
        if entry != event.entry_hash or link_hash(prev_hash, entry) != event.hash:
            return problem(event.seq, f"event #{event.seq} ({event.action}) was altered")
        prev_hash = event.hash
        expected += 1
    if chain.size >= expected:
        return problem(
            expected,
            f"event #{expected} is missing (the chain was written up to #{chain.size})",
        )
    if chain.head_hash != prev_hash:
        return problem(
            chain.size,
            f"the head row was rewritten (its hash is not that of event #{chain.size})",
        )
    # One statement, so an event appended meanwhile is counted in the head it reads.
    beyond = AuditEvent.objects.filter(
        chain_id=chain.pk,
        seq__gt=Subquery(AuditChain.objects.filter(pk=chain.pk).values("size")[:1]),
    ).aggregate(last=Max("seq"))["last"]
    if beyond is not None:
        return problem(
            chain.size,
            f"the head row was rewritten (it counts fewer events than the chain has, up to "
            f"#{beyond})",
        )
    return expected - 1, None


def verify_trail() -> TrailReport:
    """Recompute every chain; at most one problem per chain, the first."""
    events = 0
    problems: list[ChainProblem] = []
    chains = list(AuditChain.objects.order_by("name"))
    for chain in chains:
        checked, problem = verify_one(chain)
        events += checked
        if problem is not None:
            problems.append(problem)
    orphans = AuditEvent.objects.exclude(chain_id__in=AuditChain.objects.values("pk")).count()
    if orphans:
        problems.append(ChainProblem("?", 0, f"{orphans} events belong to no chain head"))
    return TrailReport(events=events, chains=len(chains), problems=problems)
