"""Reads. The gate's facts load in a fixed number of queries whatever their number."""

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.backends.utils import CursorWrapper
from django.db.models import Case, Exists, Model, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, Concat
from django.utils import timezone
from guardian.models import UserObjectPermission

from releasegate.accounts.actors import Actor, Capability
from releasegate.accounts.models import ApiToken
from releasegate.accounts.roles import ROLE_PERMISSION_PREFIX
from releasegate.accounts.selectors import project_ids_with_role
from releasegate.accounts.tokens import (
    token_checked,
    token_columns,
    token_from_row,
    token_lookup_sql,
)
from releasegate.checks.models import AdvisoryGeneration, CheckResult, WaiverGeneration
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
    """The actor's releases, with the check generations the gate reads (so a list can ask the
    gate of each without a query more)."""
    return with_check_generations(
        Release.objects.filter(project_id__in=visible_project_ids(actor)).select_related(
            "project", "requester"
        )
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
        vulnerability_threshold=policy.vulnerability_threshold,
        license_denylist=tuple(policy.license_denylist),
        external_ci=dict(policy.external_ci),
    )


def with_check_generations(releases: QuerySet[Release]) -> QuerySet[Release]:
    """Releases annotated with the advisory and waiver generations their checks' inputs include
    (`advisory_generation`, `waiver_generation`), read in the same query."""
    return releases.annotate(
        advisory_generation=Coalesce(
            Subquery(AdvisoryGeneration.objects.order_by().values("value")[:1]), 0
        ),
        waiver_generation=Coalesce(
            Subquery(
                WaiverGeneration.objects.filter(project_id=OuterRef("project_id")).values("value")[
                    :1
                ]
            ),
            0,
        ),
    )


def _promoted_at(release: Release) -> datetime | None:
    if release.state != Release.State.PROMOTED:
        return None
    promotion = getattr(release, "promotion", None)
    return promotion.promoted_at if promotion is not None else None


def active_vetoes_for(release: Release) -> QuerySet[Veto]:
    """Active vetoes that block this release: its own; a carried-forward one cast in its project
    and environment unless the release was already promoted when it was cast (whatever the
    release's id or version: a spare draft made before the veto does not escape it); and a
    carried-forward one on the same artifact digest."""
    carry = Q(scope=Veto.Scope.CARRY_FORWARD)
    promoted_at = _promoted_at(release)
    not_promoted_before = Q() if promoted_at is None else Q(created_at__lt=promoted_at)
    return (
        Veto.objects.filter(lifted_at__isnull=True)
        .filter(
            Q(release_id=release.pk)
            | (
                carry
                & Q(project_id=release.project_id, environment=release.environment)
                & not_promoted_before
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
    loaded by `gate_release_queryset`: with its project, current policy, promotion, check
    generations and incident annotations), and one each for holds and break-glass when the
    release's annotations say there are any."""
    policy = release.project.current_policy
    if policy is None:
        raise NotFound("The project has no gate policy.")
    promoted_at = _promoted_at(release)
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
            inputs_digest=c.inputs_digest,
        )
        for c in CheckResult.objects.filter(
            release_id=release.pk, manifest_digest=release.manifest_digest
        )
        .only(
            "check_name",
            "status",
            "manifest_digest",
            "updated_at",
            "summary",
            "valid_until",
            "inputs_digest",
        )
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
        advisory_generation=release.advisory_generation,  # type: ignore[attr-defined]
        waiver_generation=release.waiver_generation,  # type: ignore[attr-defined]
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
        "advisory_generation": AdvisoryGeneration,
        "waiver_generation": WaiverGeneration,
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
        "vulnerability_threshold",
        "license_denylist",
        "external_ci",
    )
    (ag_value,) = _quoted_names(AdvisoryGeneration, "ag", "value")
    wg_project, wg_value = _quoted_names(WaiverGeneration, "wg", "project", "value")
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
        c_inputs,
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
        "inputs_digest",
    )
    # Only quoted identifiers from the models are formatted in; every value is a bound parameter.
    head = f"""
SELECT r.id, r.project_id, r.slug, r.version, r.artifact_digest, r.environment, r.state,
    r.requester_id, {pm_at}, {gp[0]}, {gp[1]}, {gp[2]}::text, {gp[3]}::text, {gp[4]}::text,
    {gp[5]}, {gp[6]}, {gp[7]}, {gp[8]}::text, {gp[9]}::text,
    (SELECT {ag_value} FROM {table["advisory_generation"]} ag LIMIT 1),
    (SELECT {wg_value} FROM {table["waiver_generation"]} wg WHERE {wg_project} = r.project_id),
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
                ({v_project} = r.project_id AND {v_env} = r.environment
                    AND (r.state <> %s OR {pm_at} IS NULL OR {v_created} < {pm_at}))
                OR {v_artifact} = r.artifact_digest)))),
    (SELECT json_agg(json_build_array({c_name}, {c_status}, {c_manifest}, {c_updated},
            {c_summary}, {c_valid_until}, {c_inputs})
            ORDER BY {c_name}, {c_updated} DESC, {c_id})::text
        FROM {table["check"]} c
        WHERE {c_release} = r.id AND {c_manifest} = r.manifest_digest),
    {_incident_columns_sql()}
FROM (
    SELECT {r_id} AS id, {r_project} AS project_id, {p_slug} AS slug, {r_version} AS version,
        {r_artifact} AS artifact_digest, {r_env} AS environment, {r_state} AS state,
        {r_requester} AS requester_id, {r_manifest} AS manifest_digest, {p_policy} AS policy_id
    FROM {table["release"]} r0 JOIN {table["project"]} p0 ON {p_id} = {r_project}
    WHERE """  # noqa: S608
    tail = f"""
    ORDER BY {r_env} = %s DESC, {r_created} DESC, {r_id} DESC
    LIMIT 1
) r
LEFT JOIN {table["policy"]} gp ON {gp[0]} = r.policy_id
LEFT JOIN {table["promotion"]} pm ON {pm_release} = r.id"""
    where = {
        "projects": f"{r_project} = ANY(%s)",
        "visible": f"{r_project} IN (SELECT id FROM vis)",  # noqa: S608
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
    environment: str | None = None,
) -> GateFacts | None:
    """PostgreSQL only: the release and every fact the gate reads, in one round trip, the same
    `GateFacts` as `load_gate_facts` (its reference). The release is the one with `release_id`, or
    the project's `version`, or the newest with `artifact_digest` (optionally in `project_slug`;
    one of `environment` first), among `project_ids` only; None when there is none."""
    if not project_ids:
        return None
    sql, params = _gate_statement(
        "projects",
        [list(project_ids)],
        release_id=release_id,
        project_slug=project_slug,
        version=version,
        artifact_digest=artifact_digest,
        environment=environment,
    )
    row = _fetch_prepared(sql, params)
    return None if row is None else _facts_from_row(row)


def _gate_statement(
    scope: str,
    scope_params: list[Any],
    *,
    release_id: int | None,
    project_slug: str | None,
    version: str | None,
    artifact_digest: str | None,
    environment: str | None,
) -> tuple[str, list[Any]]:
    """The gate read's SQL and parameters, its releases limited by the `scope` condition."""
    head, tail, where_sql = _gate_facts_sql()
    conditions = [where_sql[scope]]
    params: list[Any] = [
        ContentType.objects.get_for_model(Project).pk,
        ROLE_PERMISSION_PREFIX,
        Veto.Scope.CARRY_FORWARD.value,
        Release.State.PROMOTED.value,
        *scope_params,
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
    if len(conditions) == 1:
        raise ValueError("Name the release: its id, its version or its artifact digest.")
    params.append(environment)
    return head + " AND ".join(conditions) + tail, params


def _facts_from_row(row: Sequence[Any]) -> GateFacts:
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
        vulnerability_threshold,
        license_denylist,
        external_ci,
        advisory_generation,
        waiver_generation,
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
            vulnerability_threshold=vulnerability_threshold,
            license_denylist=tuple(json.loads(license_denylist)),
            external_ci=dict(json.loads(external_ci)),
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
                inputs_digest=inputs_digest,
            )
            for check, status, manifest, updated_at, summary, valid_until, inputs_digest in _rows(
                checks
            )
        ),
        holds=hold_rows,
        break_glass=break_glass,
        reviews_due=reviews_due,
        advisory_generation=advisory_generation or 0,
        waiver_generation=waiver_generation or 0,
    )


@cache
def _bearer_sql() -> tuple[str, str]:
    """The SQL around the gate read for a bearer token: the token with its user (`tok`) and the
    projects it would see (`vis`: a service token's project; the projects where a personal
    token's user holds a role, as `project_ids_with_role` reads them), then the token's columns
    beside the gate read's, NULL when no release is found among `vis`."""
    quote = connection.ops.quote_name
    token_table = quote(ApiToken._meta.db_table)
    t_key, t_kind, t_project, t_user = _quoted_names(
        ApiToken, "t", "key_id", "kind", "project", "user"
    )
    g_user, g_ct, g_object, g_permission = _quoted_names(
        UserObjectPermission, "g", "user", "content_type", "object_pk", "permission"
    )
    perm_id, perm_codename = _quoted_names(Permission, "perm", "id", "codename")
    before = f"""
WITH tok AS ({token_lookup_sql()}),
vis AS (
    SELECT {t_project} AS id FROM {token_table} t
    WHERE {t_key} = %s AND {t_kind} = %s AND {t_project} IS NOT NULL
    UNION
    SELECT {g_object}::bigint FROM {token_table} t
    JOIN {quote(UserObjectPermission._meta.db_table)} g ON {g_user} = {t_user}
    JOIN {quote(Permission._meta.db_table)} perm ON {perm_id} = {g_permission}
    WHERE {t_key} = %s AND {t_kind} = %s AND {g_ct} = %s AND starts_with({perm_codename}, %s)
)
SELECT tok.*, gate.* FROM tok LEFT JOIN ("""  # noqa: S608
    return before, ") gate ON TRUE"


def load_bearer_gate_facts(
    prefix: str,
    key_id: str,
    secret: str,
    *,
    release_id: int | None = None,
    project_slug: str | None = None,
    version: str | None = None,
    artifact_digest: str | None = None,
    environment: str | None = None,
) -> tuple[ApiToken, GateFacts | None]:
    """PostgreSQL only: the bearer token (`token_parts` of it) and the gate facts of the release
    it names among the projects the token may read, in one round trip: the same token as
    `token_verify` and the same facts as `load_visible_gate_facts(visible_project_ids(...))`
    (its reference). The token is verified by `token_checked` before any fact is looked at:
    TokenRejected when it is not valid, whatever the facts say."""
    before, after = _bearer_sql()
    gate_sql, gate_params = _gate_statement(
        "visible",
        [],
        release_id=release_id,
        project_slug=project_slug,
        version=version,
        artifact_digest=artifact_digest,
        environment=environment,
    )
    params: list[Any] = [
        key_id,
        key_id,
        ApiToken.Kind.SERVICE.value,
        key_id,
        ApiToken.Kind.PERSONAL.value,
        ContentType.objects.get_for_model(Project).pk,
        ROLE_PERMISSION_PREFIX,
        *gate_params,
    ]
    row = _fetch_prepared(before + gate_sql + after, params)
    width = token_columns()
    token = token_checked(prefix, secret, None if row is None else token_from_row(row[:width]))
    if row is None or row[width] is None:
        return token, None
    actor = Actor.for_token(token)
    # A service token's scopes decide whether it reads its project (a narrow one reads none);
    # decided before the facts are read, so such a token learns nothing of them.
    if actor.is_service and row[width + 1] not in visible_project_ids(actor):
        return token, None
    return token, _facts_from_row(row[width:])


def bearer_gate_decision(
    prefix: str,
    key_id: str,
    secret: str,
    *,
    release_id: int | None = None,
    project_slug: str | None = None,
    version: str | None = None,
    artifact_digest: str | None = None,
    environment: str | None = None,
) -> tuple[ApiToken, GateDecision | None]:
    """The verified token and the gate's answer for the release it names, in one round trip (see
    `load_bearer_gate_facts`), None when it names none it may see (a 404 for the caller);
    TokenRejected as `token_verify` would."""
    token, facts = load_bearer_gate_facts(
        prefix,
        key_id,
        secret,
        release_id=release_id,
        project_slug=project_slug,
        version=version,
        artifact_digest=artifact_digest,
        environment=environment,
    )
    return token, None if facts is None else _decided(facts, environment)


def gate_release_queryset() -> QuerySet[Release]:
    """Releases loaded with everything the gate reads alongside them, in one query."""
    return with_check_generations(
        Release.objects.select_related("project", "project__current_policy", "promotion")
    ).annotate(**incident_annotations())


def _decided(facts: GateFacts, environment: str | None = None) -> GateDecision:
    decision = evaluate_gate(facts, timezone.now(), environment)
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
    environment: str | None = None,
) -> GateDecision:
    """The gate's answer for the release the actor names (by id, by project and version, or the
    newest with an artifact digest), among the projects it may see, for a deploy to
    `environment` (None: to the release's own); a 404 otherwise."""
    return gate_decision_among(
        visible_project_ids(actor),
        release_id=release_id,
        project_slug=project_slug,
        version=version,
        artifact_digest=artifact_digest,
        environment=environment,
    )


def gate_decision_among(
    project_ids: list[int],
    *,
    release_id: int | None = None,
    project_slug: str | None = None,
    version: str | None = None,
    artifact_digest: str | None = None,
    environment: str | None = None,
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
            environment=environment,
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
        # A digest released to several environments: the release of the one asked about.
        asked_first = Case(When(environment=environment, then=0), default=1)
        release = releases.order_by(asked_first, "-created_at", "-id").first()
        facts = load_gate_facts(release) if release is not None else None
    if facts is None:
        raise NotFound("No such release.")
    return _decided(facts, environment)
