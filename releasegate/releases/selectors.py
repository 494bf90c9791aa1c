"""Reads. The gate's facts load in a fixed number of queries whatever their number."""

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.backends.utils import CursorWrapper
from django.db.models import Exists, Model, OuterRef, Q, QuerySet, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Concat
from django.utils import timezone
from guardian.models import UserObjectPermission

from releasegate.accounts.actors import Actor, Capability
from releasegate.accounts.roles import ROLE_PERMISSION_PREFIX, project_ids_with_role
from releasegate.checks.models import CheckResult
from releasegate.errors import NotFound
from releasegate.incidents.models import BreakGlass, Hold
from releasegate.incidents.selectors import (
    break_glass_facts,
    hold_facts,
    incident_annotations,
)
from releasegate.releases.gate import (
    ApprovalFact,
    BreakGlassFact,
    CheckFact,
    EvidenceFact,
    GateDecision,
    GateFacts,
    HoldFact,
    PolicyFacts,
    ReleaseFacts,
    ReviewDueFact,
    VetoFact,
    evaluate_gate,
)
from releasegate.releases.models import (
    Approval,
    Evidence,
    GatePolicy,
    Project,
    Promotion,
    Release,
    Veto,
)
from releasegate.releases.signals import gate_evaluated


def visible_project_ids(actor: Actor) -> list[int]:
    """The projects whose releases the actor may read (a narrow token, e.g. alerts:write, none)."""
    if actor.is_service and actor.token is not None:
        project_id = actor.token.project_id
        readable = project_id is not None and actor.token_grants(Capability.READ)
        return [project_id] if readable and project_id is not None else []
    if actor.person is None:
        return []
    return project_ids_with_role(actor.person)


def releases_visible_to(actor: Actor) -> QuerySet[Release]:
    return Release.objects.filter(project_id__in=visible_project_ids(actor)).select_related(
        "project", "requester"
    )


def release_for(actor: Actor, release_id: int) -> Release:
    """The release, if the actor may see it; a 404 otherwise (never a 403 that tells it exists)."""
    release = gate_release_queryset().select_related("requester").filter(pk=release_id).first()
    if release is None or not actor.can(release.project, Capability.READ):
        raise NotFound("No such release.")
    return release


def project_for(actor: Actor, slug: str) -> Project:
    project = Project.objects.select_related("current_policy").filter(slug=slug).first()
    if project is None or not actor.can(project, Capability.READ):
        raise NotFound("No such project.")
    return project


def policy_facts(policy: GatePolicy) -> PolicyFacts:
    return PolicyFacts(
        version=policy.version,
        required_items=tuple(policy.required_items),
        required_checks=tuple(policy.required_checks),
        required_approvals=dict(policy.required_approvals),
        max_approval_age=timedelta(days=policy.max_approval_age_days),
        max_review_age=timedelta(days=policy.max_review_age_days),
    )


def active_vetoes_for(release: Release) -> QuerySet[Veto]:
    """Active vetoes that block this release: its own, carried forward from earlier releases of
    the same project and environment, and any on the same artifact digest."""
    carry = Q(scope=Veto.Scope.CARRY_FORWARD)
    return (
        Veto.objects.filter(lifted_at__isnull=True)
        .filter(
            Q(release_id=release.pk)
            | (
                carry
                & Q(
                    project_id=release.project_id,
                    environment=release.environment,
                    release_id__lte=release.pk,
                )
            )
            | (carry & Q(artifact_digest=release.artifact_digest))
        )
        .select_related("user")
    )


def _holds_role(project_id: int) -> Exists:
    """Whether an approval's giver still holds its role on the project and is active."""
    return Exists(
        UserObjectPermission.objects.filter(
            user_id=OuterRef("user_id"),
            user__is_active=True,
            content_type=ContentType.objects.get_for_model(Project),
            object_pk=str(project_id),
            permission__codename=Concat(Value(ROLE_PERMISSION_PREFIX), OuterRef("role")),
        )
    )


def load_gate_facts(release: Release) -> GateFacts:
    """Load every fact the gate reads: 4 queries beyond the release itself (which must have been
    loaded with its project and current policy, see `release_for`/`load_release_for_gate`), and
    one each for holds and break-glass when the release's annotations say there are any."""
    policy = release.project.current_policy
    if policy is None:
        raise NotFound("The project has no gate policy.")
    promoted_at = None
    if release.state == Release.State.PROMOTED:
        promotion = getattr(release, "promotion", None)
        promoted_at = promotion.promoted_at if promotion is not None else None
    evidence = tuple(
        EvidenceFact(kind=e.kind, digest=e.digest, reviewed_at=e.reviewed_at)
        for e in Evidence.objects.filter(release_id=release.pk, is_current=True)
        .annotate(reviewed_at=KeyTextTransform("reviewed_at", "document"))
        .only("kind", "digest")
        .order_by("kind")
    )
    approvals = tuple(
        ApprovalFact(
            user_id=a.user_id,
            username=a.user.get_username(),
            role=a.role,
            manifest_digest=a.manifest_digest,
            created_at=a.created_at,
            holds_role=a.holds_role,
        )
        for a in Approval.objects.filter(release_id=release.pk)
        .select_related("user")
        .annotate(holds_role=_holds_role(release.project_id))
        .order_by("created_at", "id")
    )
    vetoes = tuple(
        VetoFact(
            id=v.pk,
            release_id=v.release_id,
            project_id=v.project_id,
            role=v.role,
            by=v.user.get_username(),
            reason=v.reason,
            since=v.created_at,
            scope=v.scope,
        )
        for v in active_vetoes_for(release).order_by("created_at", "id")
    )
    checks = tuple(
        CheckFact(
            check=c.check_name,
            status=c.status,
            manifest_digest=c.manifest_digest,
            updated_at=c.updated_at,
            summary=c.summary,
            valid_until=c.valid_until,
        )
        for c in CheckResult.objects.filter(
            release_id=release.pk, manifest_digest=release.manifest_digest
        )
        .only("check_name", "status", "manifest_digest", "updated_at", "summary", "valid_until")
        .order_by("check_name", "-updated_at", "id")
    )
    holds = hold_facts(release)
    break_glass, reviews_due = break_glass_facts(release)
    return GateFacts(
        release=ReleaseFacts(
            id=release.pk,
            project_id=release.project_id,
            project_slug=release.project.slug,
            version=release.version,
            artifact_digest=release.artifact_digest,
            environment=release.environment,
            state=release.state,
            requester_id=release.requester_id,
            promoted_at=promoted_at,
        ),
        policy=policy_facts(policy),
        evidence=evidence,
        approvals=approvals,
        vetoes=vetoes,
        checks=checks,
        holds=holds,
        break_glass=break_glass,
        reviews_due=reviews_due,
    )


def _quoted_names(model: type[Model], alias: str, *fields: str) -> list[str]:
    quote = connection.ops.quote_name
    columns = [model._meta.get_field(name).column for name in fields]  # type: ignore[union-attr]
    return [f"{alias}.{quote(column)}" for column in columns]  # type: ignore[arg-type]


@cache
def _gate_facts_sql() -> tuple[str, str, dict[str, str]]:
    """The one-statement gate read, composed once from the models' own table and column names so
    it follows the migrations: the SQL before and after the release's conditions, and each
    condition. Every value is a bound parameter (see `load_visible_gate_facts` for their order)."""
    quote = connection.ops.quote_name
    user_model = get_user_model()
    models: dict[str, type[Model]] = {
        "release": Release,
        "project": Project,
        "policy": GatePolicy,
        "promotion": Promotion,
        "evidence": Evidence,
        "approval": Approval,
        "veto": Veto,
        "check": CheckResult,
        "user": user_model,
        "uop": UserObjectPermission,
        "permission": Permission,
    }
    table = {name: quote(model._meta.db_table) for name, model in models.items()}
    r_id, r_project, r_version, r_artifact, r_env, r_state, r_requester, r_manifest, r_created = (
        _quoted_names(
            Release,
            "r0",
            "id",
            "project",
            "version",
            "artifact_digest",
            "environment",
            "state",
            "requester",
            "manifest_digest",
            "created_at",
        )
    )
    p_id, p_slug, p_policy = _quoted_names(Project, "p0", "id", "slug", "current_policy")
    username = _quoted_names(user_model, "u", user_model.USERNAME_FIELD)[0]
    u_id, u_active = _quoted_names(user_model, "u", "id", "is_active")
    gp = _quoted_names(
        GatePolicy,
        "gp",
        "id",
        "version",
        "required_items",
        "required_checks",
        "required_approvals",
        "max_approval_age_days",
        "max_review_age_days",
    )
    pm_release, pm_at = _quoted_names(Promotion, "pm", "release", "promoted_at")
    e_release, e_kind, e_digest, e_document, e_current = _quoted_names(
        Evidence, "e", "release", "kind", "digest", "document", "is_current"
    )
    a_id, a_release, a_user, a_role, a_manifest, a_created = _quoted_names(
        Approval, "a", "id", "release", "user", "role", "manifest_digest", "created_at"
    )
    g_user, g_ct, g_object, g_permission = _quoted_names(
        UserObjectPermission, "g", "user", "content_type", "object_pk", "permission"
    )
    perm_id, perm_codename = _quoted_names(Permission, "perm", "id", "codename")
    (
        v_id,
        v_release,
        v_project,
        v_env,
        v_artifact,
        v_role,
        v_user,
        v_reason,
        v_scope,
        v_created,
        v_lifted,
    ) = _quoted_names(
        Veto,
        "v",
        "id",
        "release",
        "project",
        "environment",
        "artifact_digest",
        "role",
        "user",
        "reason",
        "scope",
        "created_at",
        "lifted_at",
    )
    (
        c_id,
        c_release,
        c_name,
        c_status,
        c_manifest,
        c_updated,
        c_summary,
        c_valid_until,
    ) = _quoted_names(
        CheckResult,
        "c",
        "id",
        "release",
        "check_name",
        "status",
        "manifest_digest",
        "updated_at",
        "summary",
        "valid_until",
    )
    # Only quoted identifiers from the models are formatted in; every value is a bound parameter.
    head = f"""
SELECT r.id, r.project_id, r.slug, r.version, r.artifact_digest, r.environment, r.state,
    r.requester_id, {pm_at}, {gp[0]}, {gp[1]}, {gp[2]}::text, {gp[3]}::text, {gp[4]}::text,
    {gp[5]}, {gp[6]},
    (SELECT json_agg(json_build_array({e_kind}, {e_digest}, {e_document} ->> 'reviewed_at')
            ORDER BY {e_kind})::text
        FROM {table["evidence"]} e WHERE {e_release} = r.id AND {e_current}),
    (SELECT json_agg(json_build_array({a_user}, {username}, {a_role}, {a_manifest}, {a_created},
            {u_active} AND EXISTS (
                SELECT 1 FROM {table["uop"]} g
                JOIN {table["permission"]} perm ON {perm_id} = {g_permission}
                WHERE {g_user} = {a_user} AND {g_ct} = %s AND {g_object} = r.project_id::text
                    AND {perm_codename} = %s || {a_role}))
            ORDER BY {a_created}, {a_id})::text
        FROM {table["approval"]} a JOIN {table["user"]} u ON {u_id} = {a_user}
        WHERE {a_release} = r.id),
    (SELECT json_agg(json_build_array({v_id}, {v_release}, {v_project}, {v_role}, {username},
            {v_reason}, {v_created}, {v_scope}) ORDER BY {v_created}, {v_id})::text
        FROM {table["veto"]} v JOIN {table["user"]} u ON {u_id} = {v_user}
        WHERE {v_lifted} IS NULL AND (
            {v_release} = r.id
            OR ({v_scope} = %s AND (
                ({v_project} = r.project_id AND {v_env} = r.environment AND {v_release} <= r.id)
                OR {v_artifact} = r.artifact_digest)))),
    (SELECT json_agg(json_build_array({c_name}, {c_status}, {c_manifest}, {c_updated},
            {c_summary}, {c_valid_until}) ORDER BY {c_name}, {c_updated} DESC, {c_id})::text
        FROM {table["check"]} c
        WHERE {c_release} = r.id AND {c_manifest} = r.manifest_digest),
    {_incident_columns_sql()}
FROM (
    SELECT {r_id} AS id, {r_project} AS project_id, {p_slug} AS slug, {r_version} AS version,
        {r_artifact} AS artifact_digest, {r_env} AS environment, {r_state} AS state,
        {r_requester} AS requester_id, {r_manifest} AS manifest_digest, {p_policy} AS policy_id
    FROM {table["release"]} r0 JOIN {table["project"]} p0 ON {p_id} = {r_project}
    WHERE {r_project} = ANY(%s) AND """  # noqa: S608
    tail = f"""
    ORDER BY {r_created} DESC, {r_id} DESC
    LIMIT 1
) r
LEFT JOIN {table["policy"]} gp ON {gp[0]} = r.policy_id
LEFT JOIN {table["promotion"]} pm ON {pm_release} = r.id"""
    where = {
        "id": f"{r_id} = %s",
        "slug": f"{p_slug} = %s",
        "version": f"{r_version} = %s",
        "artifact_digest": f"{r_artifact} = %s",
    }
    return head, tail, where


def _incident_columns_sql() -> str:
    """The gate statement's columns for holds and break-glass (see `_incident_facts`): the
    release's active holds, and the confirmed break-glasses of the release or, unreviewed, of its
    project. Only quoted identifiers from the models; no values."""
    quote = connection.ops.quote_name
    user_model = get_user_model()
    hold_table = quote(Hold._meta.db_table)
    bg_table = quote(BreakGlass._meta.db_table)
    user_table = quote(user_model._meta.db_table)
    release_table = quote(Release._meta.db_table)
    h = _quoted_names(
        Hold,
        "h",
        "id",
        "alert_name",
        "summary",
        "severity",
        "signal",
        "since",
        "alert_status",
        "resolved_at",
        "release",
        "lifted_at",
    )
    b = _quoted_names(
        BreakGlass,
        "b",
        "id",
        "release",
        "project",
        "confirmed_at",
        "until",
        "review_due",
        "reviewed_at",
        "requested_by",
        "confirmed_by",
    )
    ru_id, ru_name = _quoted_names(user_model, "ru", "id", user_model.USERNAME_FIELD)
    cu_id, cu_name = _quoted_names(user_model, "cu", "id", user_model.USERNAME_FIELD)
    rr_id, rr_version = _quoted_names(Release, "rr", "id", "version")
    return f"""(SELECT json_agg(json_build_array({", ".join(h[:8])}) ORDER BY {h[5]}, {h[0]})::text
        FROM {hold_table} h WHERE {h[8]} = r.id AND {h[9]} IS NULL),
    (SELECT json_agg(json_build_array({b[0]}, {b[1]}, {b[2]}, {ru_name}, {cu_name}, {b[3]},
            {b[4]}, {b[5]}, {b[6]} IS NULL, {rr_version}) ORDER BY {b[3]}, {b[0]})::text
        FROM {bg_table} b
        JOIN {user_table} ru ON {ru_id} = {b[7]}
        JOIN {user_table} cu ON {cu_id} = {b[8]}
        JOIN {release_table} rr ON {rr_id} = {b[1]}
        WHERE {b[3]} IS NOT NULL
            AND ({b[1]} = r.id OR ({b[2]} = r.project_id AND {b[6]} IS NULL)))"""  # noqa: S608


def _incident_facts(
    release_id: int, project_id: int, holds: str | None, break_glasses: str | None
) -> tuple[tuple[HoldFact, ...], BreakGlassFact | None, tuple[ReviewDueFact, ...]]:
    """The statement's hold and break-glass columns as the ORM loader reads them."""
    latest: BreakGlassFact | None = None
    due: list[ReviewDueFact] = []
    for (
        bg_id,
        bg_release,
        bg_project,
        requested_by,
        confirmed_by,
        confirmed_at,
        until,
        review_due,
        unreviewed,
        version,
    ) in _rows(break_glasses):
        if bg_release == release_id:
            latest = BreakGlassFact(
                id=bg_id,
                requested_by=requested_by,
                confirmed_by=confirmed_by,
                confirmed_at=_moment(confirmed_at),  # type: ignore[arg-type]
                until=_moment(until),  # type: ignore[arg-type]
            )
        if bg_project == project_id and unreviewed:
            due.append(
                ReviewDueFact(
                    break_glass_id=bg_id,
                    release_id=bg_release,
                    version=version,
                    due=_moment(review_due),  # type: ignore[arg-type]
                )
            )
    return (
        tuple(
            HoldFact(
                id=hold_id,
                alert_name=alert_name,
                summary=summary,
                severity=severity,
                signal=signal,
                since=_moment(since),  # type: ignore[arg-type]
                alert_status=alert_status,
                resolved_at=_moment(resolved_at),
            )
            for (
                hold_id,
                alert_name,
                summary,
                severity,
                signal,
                since,
                alert_status,
                resolved_at,
            ) in _rows(holds)
        ),
        latest,
        tuple(due),
    )


def _fetch_prepared(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    """One row, through a server-binding cursor so PostgreSQL may keep the statement's plan for
    the connection when the connection allows it (see env.py): planning this statement costs
    several times running it. Where queries are logged (DEBUG, query-count tests) it runs as any
    other query instead, since psycopg does not expose a prepared statement's SQL to the log."""
    with connection.cursor() as cursor:
        if connection.queries_logged:
            cursor.execute(sql, params)
            return cursor.fetchone()
        raw = ServerBindingCursor(cursor.connection)  # type: ignore[call-arg]
        with CursorWrapper(raw, connection) as bound:
            bound.execute(sql, params)
            return bound.fetchone()


def _moment(value: str | None) -> datetime | None:
    # json_agg writes timestamps as ISO 8601 with the session's offset; the ORM gives UTC.
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


def _rows(value: str | None) -> list[list[Any]]:
    return json.loads(value) if value is not None else []


def load_visible_gate_facts(
    *,
    project_ids: list[int],
    release_id: int | None = None,
    project_slug: str | None = None,
    version: str | None = None,
    artifact_digest: str | None = None,
) -> GateFacts | None:
    """PostgreSQL only: the release and every fact the gate reads, in one round trip, the same
    `GateFacts` as `load_gate_facts` (its reference). The release is the one with `release_id`, or
    the project's `version`, or the newest with `artifact_digest` (optionally in `project_slug`),
    among `project_ids` only; None when there is none."""
    if not project_ids:
        return None
    head, tail, where_sql = _gate_facts_sql()
    conditions: list[str] = []
    params: list[Any] = [
        ContentType.objects.get_for_model(Project).pk,
        ROLE_PERMISSION_PREFIX,
        Veto.Scope.CARRY_FORWARD.value,
        list(project_ids),
    ]
    for key, value in (
        ("id", release_id),
        ("slug", project_slug),
        ("version", version),
        ("artifact_digest", artifact_digest),
    ):
        if value is not None:
            conditions.append(where_sql[key])
            params.append(value)
    if not conditions:
        raise ValueError("Name the release: its id, its version or its artifact digest.")
    row = _fetch_prepared(head + " AND ".join(conditions) + tail, params)
    if row is None:
        return None
    (
        rid,
        project_id,
        slug,
        release_version,
        artifact,
        environment,
        state,
        requester_id,
        promoted_at,
        policy_id,
        policy_version,
        required_items,
        required_checks,
        required_approvals,
        max_approval_age_days,
        max_review_age_days,
        evidence,
        approvals,
        vetoes,
        checks,
        holds,
        break_glasses,
    ) = row
    if policy_id is None:
        raise NotFound("The project has no gate policy.")
    hold_rows, break_glass, reviews_due = _incident_facts(rid, project_id, holds, break_glasses)
    return GateFacts(
        release=ReleaseFacts(
            id=rid,
            project_id=project_id,
            project_slug=slug,
            version=release_version,
            artifact_digest=artifact,
            environment=environment,
            state=state,
            requester_id=requester_id,
            promoted_at=promoted_at if state == Release.State.PROMOTED else None,
        ),
        policy=PolicyFacts(
            version=policy_version,
            required_items=tuple(json.loads(required_items)),
            required_checks=tuple(json.loads(required_checks)),
            required_approvals=dict(json.loads(required_approvals)),
            max_approval_age=timedelta(days=max_approval_age_days),
            max_review_age=timedelta(days=max_review_age_days),
        ),
        evidence=tuple(
            EvidenceFact(kind=kind, digest=digest, reviewed_at=reviewed_at)
            for kind, digest, reviewed_at in _rows(evidence)
        ),
        approvals=tuple(
            ApprovalFact(
                user_id=user_id,
                username=name,
                role=role,
                manifest_digest=manifest,
                created_at=_moment(created_at),  # type: ignore[arg-type]
                holds_role=holds_role,
            )
            for user_id, name, role, manifest, created_at, holds_role in _rows(approvals)
        ),
        vetoes=tuple(
            VetoFact(
                id=veto_id,
                release_id=veto_release,
                project_id=veto_project,
                role=role,
                by=name,
                reason=reason,
                since=_moment(since),  # type: ignore[arg-type]
                scope=scope,
            )
            for veto_id, veto_release, veto_project, role, name, reason, since, scope in _rows(
                vetoes
            )
        ),
        checks=tuple(
            CheckFact(
                check=check,
                status=status,
                manifest_digest=manifest,
                updated_at=_moment(updated_at),  # type: ignore[arg-type]
                summary=summary,
                valid_until=_moment(valid_until),
            )
            for check, status, manifest, updated_at, summary, valid_until in _rows(checks)
        ),
        holds=hold_rows,
        break_glass=break_glass,
        reviews_due=reviews_due,
    )


def gate_release_queryset() -> QuerySet[Release]:
    """Releases loaded with everything the gate reads alongside them, in one query."""
    return Release.objects.select_related(
        "project", "project__current_policy", "promotion"
    ).annotate(**incident_annotations())


def _decided(facts: GateFacts) -> GateDecision:
    decision = evaluate_gate(facts, timezone.now())
    gate_evaluated.send(sender=None, decision=decision)
    return decision


def gate_decision(release: Release) -> GateDecision:
    """The gate's answer for a release loaded with `gate_release_queryset`, announced to metrics."""
    return _decided(load_gate_facts(release))


def visible_gate_decision(
    actor: Actor,
    *,
    release_id: int | None = None,
    project_slug: str | None = None,
    version: str | None = None,
    artifact_digest: str | None = None,
) -> GateDecision:
    """The gate's answer for the release the actor names (by id, by project and version, or the
    newest with an artifact digest), among the projects it may see; a 404 otherwise."""
    return gate_decision_among(
        visible_project_ids(actor),
        release_id=release_id,
        project_slug=project_slug,
        version=version,
        artifact_digest=artifact_digest,
    )


def gate_decision_among(
    project_ids: list[int],
    *,
    release_id: int | None = None,
    project_slug: str | None = None,
    version: str | None = None,
    artifact_digest: str | None = None,
) -> GateDecision:
    """As `visible_gate_decision`, among `project_ids`: for a caller that may ask the gate of a
    project without reading it (an admission token), decided by the caller's own "may"."""
    if connection.vendor == "postgresql":
        facts = load_visible_gate_facts(
            project_ids=project_ids,
            release_id=release_id,
            project_slug=project_slug,
            version=version,
            artifact_digest=artifact_digest,
        )
    else:
        releases = gate_release_queryset().filter(project_id__in=project_ids)
        if release_id is not None:
            releases = releases.filter(pk=release_id)
        if project_slug is not None:
            releases = releases.filter(project__slug=project_slug)
        if version is not None:
            releases = releases.filter(version=version)
        if artifact_digest is not None:
            releases = releases.filter(artifact_digest=artifact_digest)
        release = releases.order_by("-created_at", "-id").first()
        facts = load_gate_facts(release) if release is not None else None
    if facts is None:
        raise NotFound("No such release.")
    return _decided(facts)
