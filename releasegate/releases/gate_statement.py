"""The gate's one-statement read (PostgreSQL): the release and every fact the gate reads and, for a
bearer token, the token with its user and the projects it may see, in one prepared statement.

The statement answers one JSON document, read back by name: each fact's keys are its dataclass's
field names. It is composed once from the models' own table and column names, so it follows the
migrations; every value is a bound parameter. `selectors.load_gate_facts` (the ORM loader) is its
reference: tests prove the two equal over generated facts.
"""

import hashlib
import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, TypeVar, cast, overload

import psycopg
import psycopg.errors
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    ProgrammingError,
    connection,
    connections,
)
from django.db.models import Field, Model
from guardian.models import UserObjectPermission

from releasegate.accounts.models import ApiToken
from releasegate.accounts.roles import ROLE_PERMISSION_PREFIX
from releasegate.accounts.tokens import token_checked
from releasegate.checks.models import AdvisoryGeneration, CheckResult, WaiverGeneration
from releasegate.errors import NotFound
from releasegate.incidents.models import BreakGlass, Hold
from releasegate.releases.gate import (
    ApprovalFact,
    BreakGlassFact,
    CheckFact,
    EvidenceFact,
    GateFacts,
    HoldFact,
    PolicyFacts,
    ReleaseFacts,
    ReviewDueFact,
    VetoFact,
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
from releasegate.releases.questions import GateQuestion

# -- composing -------------------------------------------------------------------------------------


class _Columns:
    """A model's quoted columns under a table alias, by field name (`{r.version}` in a template
    reads `r."version"`), and its quoted table (`{r.table}`)."""

    def __init__(self, model: type[Model], alias: str):
        self._model, self._alias = model, alias
        self.table = connection.ops.quote_name(model._meta.db_table)

    def __getattr__(self, name: str) -> str:
        field = self._model._meta.get_field(name)
        assert isinstance(field, Field) and field.column, f"{self._model.__name__}.{name}"
        return f"{self._alias}.{connection.ops.quote_name(field.column)}"


def _names() -> dict[str, Any]:
    user = get_user_model()
    aliases: dict[str, type[Model]] = {
        "r0": Release,
        "p0": Project,
        "gp": GatePolicy,
        "pm": Promotion,
        "ag": AdvisoryGeneration,
        "wg": WaiverGeneration,
        "e": Evidence,
        "a": Approval,
        "au": user,
        "g": UserObjectPermission,
        "perm": Permission,
        "v": Veto,
        "vu": user,
        "c": CheckResult,
        "h": Hold,
        "b": BreakGlass,
        "ru": user,
        "cu": user,
        "rr": Release,
        "tok": ApiToken,
        "t": ApiToken,
        "u": user,
    }
    names: dict[str, Any] = {alias: _Columns(model, alias) for alias, model in aliases.items()}
    for alias in ("au", "vu", "ru", "cu"):  # the people, by their username
        names[f"{alias}_name"] = getattr(names[alias], user.USERNAME_FIELD)
    return names


# The release the question names, and its facts. `{where}` and `{first}` are filled in per kind
# of question (see `_gate_sql`); `r` is the chosen release, one row or none. Each list of facts is
# an ARRAY of its rows, ordered as the ORM loader orders them (cheaper to start than an aggregate).
_GATE_DOCUMENT = """
SELECT json_build_object(
    'release', json_build_object(
        'id', r.id, 'project_id', r.project_id, 'project_slug', r.project_slug,
        'version', r.version, 'artifact_digest', r.artifact_digest,
        'environment', r.environment, 'state', r.state, 'requester_id', r.requester_id,
        'promoted_at', {pm.promoted_at}),
    'policy', CASE WHEN {gp.id} IS NOT NULL THEN json_build_object(
        'version', {gp.version}, 'required_items', {gp.required_items},
        'required_checks', {gp.required_checks}, 'required_approvals', {gp.required_approvals},
        'max_approval_age_days', {gp.max_approval_age_days},
        'max_review_age_days', {gp.max_review_age_days},
        'vulnerability_threshold', {gp.vulnerability_threshold},
        'license_denylist', {gp.license_denylist}, 'external_ci', {gp.external_ci}) END,
    'advisory_generation', (SELECT {ag.value} FROM {ag.table} ag LIMIT 1),
    'waiver_generation', (
        SELECT {wg.value} FROM {wg.table} wg WHERE {wg.project} = r.project_id),
    'evidence', array_to_json(ARRAY(
        SELECT json_build_object(
            'kind', {e.kind}, 'digest', {e.digest},
            'reviewed_at', {e.document} ->> 'reviewed_at')
        FROM {e.table} e WHERE {e.release} = r.id AND {e.is_current}
        ORDER BY {e.kind})),
    'approvals', array_to_json(ARRAY(
        SELECT json_build_object(
            'user_id', {a.user}, 'username', {au_name}, 'role', {a.role},
            'manifest_digest', {a.manifest_digest}, 'created_at', {a.created_at},
            'holds_role', {au.is_active} AND EXISTS (
                SELECT 1 FROM {g.table} g JOIN {perm.table} perm ON {perm.id} = {g.permission}
                WHERE {g.user} = {a.user} AND {g.content_type} = %(project_type)s
                    AND {g.object_pk} = r.project_id::text
                    AND {perm.codename} = %(role_prefix)s || {a.role}))
        FROM {a.table} a JOIN {au.table} au ON {au.id} = {a.user}
        WHERE {a.release} = r.id
        ORDER BY {a.created_at}, {a.id})),
    'vetoes', array_to_json(ARRAY(
        SELECT json_build_object(
            'id', {v.id}, 'release_id', {v.release}, 'project_id', {v.project},
            'role', {v.role}, 'by', {vu_name}, 'reason', {v.reason}, 'since', {v.created_at},
            'scope', {v.scope})
        FROM {v.table} v JOIN {vu.table} vu ON {vu.id} = {v.user}
        WHERE {v.lifted_at} IS NULL AND (
            {v.release} = r.id
            OR ({v.scope} = %(carry_forward)s AND (
                ({v.project} = r.project_id AND {v.environment} = r.environment
                    AND (r.state <> %(promoted)s OR {pm.promoted_at} IS NULL
                        OR {v.created_at} < {pm.promoted_at}))
                OR {v.artifact_digest} = r.artifact_digest)))
        ORDER BY {v.created_at}, {v.id})),
    'checks', array_to_json(ARRAY(
        SELECT json_build_object(
            'check', {c.check_name}, 'status', {c.status},
            'manifest_digest', {c.manifest_digest}, 'updated_at', {c.updated_at},
            'summary', {c.summary}, 'valid_until', {c.valid_until},
            'inputs_digest', {c.inputs_digest})
        FROM {c.table} c
        WHERE {c.release} = r.id AND {c.manifest_digest} = r.manifest_digest
        ORDER BY {c.check_name}, {c.updated_at} DESC, {c.id})),
    'holds', array_to_json(ARRAY(
        SELECT json_build_object(
            'id', {h.id}, 'alert_name', {h.alert_name}, 'summary', {h.summary},
            'severity', {h.severity}, 'signal', {h.signal}, 'since', {h.since},
            'alert_status', {h.alert_status}, 'resolved_at', {h.resolved_at})
        FROM {h.table} h WHERE {h.release} = r.id AND {h.lifted_at} IS NULL
        ORDER BY {h.since}, {h.id})),
    'break_glasses', array_to_json(ARRAY(
        SELECT json_build_object(
            'id', {b.id}, 'release_id', {b.release}, 'project_id', {b.project},
            'requested_by', {ru_name}, 'confirmed_by', {cu_name},
            'confirmed_at', {b.confirmed_at}, 'until', {b.until}, 'review_due', {b.review_due},
            'reviewed', {b.reviewed_at} IS NOT NULL, 'version', {rr.version})
        FROM {b.table} b
        JOIN {ru.table} ru ON {ru.id} = {b.requested_by}
        JOIN {cu.table} cu ON {cu.id} = {b.confirmed_by}
        JOIN {rr.table} rr ON {rr.id} = {b.release}
        WHERE {b.confirmed_at} IS NOT NULL
            AND ({b.release} = r.id OR ({b.project} = r.project_id AND {b.reviewed_at} IS NULL))
        ORDER BY {b.confirmed_at}, {b.id}))
) AS document
FROM (
    SELECT {r0.id} AS id, {r0.project} AS project_id, {p0.slug} AS project_slug,
        {r0.version} AS version, {r0.artifact_digest} AS artifact_digest,
        {r0.environment} AS environment, {r0.state} AS state, {r0.requester} AS requester_id,
        {r0.manifest_digest} AS manifest_digest, {p0.current_policy} AS policy_id
    FROM {r0.table} r0 JOIN {p0.table} p0 ON {p0.id} = {r0.project}
    WHERE {where}
    ORDER BY {first} DESC, {r0.created_at} DESC, {r0.id} DESC
    LIMIT 1
) r
LEFT JOIN {gp.table} gp ON {gp.id} = r.policy_id
LEFT JOIN {pm.table} pm ON {pm.release} = r.id
"""

# A bearer token's row (`tok`), the projects it may see (`vis`: a service token's project; the
# projects where a personal token's user holds a role, as `project_ids_with_role` reads them).
_TOKEN_CTE = """
WITH tok AS MATERIALIZED (SELECT * FROM {t.table} t WHERE {t.key_id} = %(key_id)s),
vis AS (
    SELECT {tok.project} AS id FROM tok
    WHERE {tok.kind} = %(service)s AND {tok.project} IS NOT NULL
    UNION
    SELECT {g.object_pk}::bigint FROM tok
    JOIN {g.table} g ON {g.user} = {tok.user}
    JOIN {perm.table} perm ON {perm.id} = {g.permission}
    WHERE {tok.kind} = %(personal)s AND {g.content_type} = %(project_type)s
        AND starts_with({perm.codename}, %(role_prefix)s)
)"""
_TOKEN_COLUMNS = """
    'token', (SELECT row_to_json(tok) FROM tok),
    'user', (SELECT row_to_json(u) FROM tok JOIN {u.table} u ON {u.id} = {tok.user}),"""

# How a question names its release, each a condition on `r0`/`p0`.
_CONDITIONS = {
    "release_id": "{r0.id} = %(release_id)s",
    "project_slug": "{p0.slug} = %(project_slug)s",
    "version": "{r0.version} = %(version)s",
    "artifact_digest": "{r0.artifact_digest} = %(artifact_digest)s",
}
_SCOPES = {
    "projects": "{r0.project} = ANY(%(project_ids)s)",
    "token": "{r0.project} IN (SELECT id FROM vis)",
}
# Which release comes first when several answer the question: the one of the environment asked
# about (a digest released to several); for admission, the one promoted in it.
_FIRST = {
    "environment": "{r0.environment} = %(environment)s",
    "promoted_here": "({r0.environment} = %(environment)s AND {r0.state} = %(promoted)s)",
}


# PostgreSQL's type of each parameter a statement may name: the arguments of its function.
_PARAMETER_TYPES = {
    "key_id": "text",
    "service": "text",
    "personal": "text",
    "project_type": "integer",
    "role_prefix": "text",
    "carry_forward": "text",
    "promoted": "text",
    "release_id": "bigint",
    "project_slug": "text",
    "version": "text",
    "artifact_digest": "text",
    "environment": "text",
    "project_ids": "bigint[]",
    "digests": "text[]",
}
# What would make a document depend on the moment it is read, not only on the data: a document
# kept across requests (see `_answer`) must be the same at every moment of one snapshot.
_MOMENTS = re.compile(
    r"\b(?:now|clock_timestamp|statement_timestamp|transaction_timestamp|"
    r"timeofday|random)\s*\(|\bcurrent_(?:date|time|timestamp)\b|\blocal"
    r"(?:time|timestamp)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Statement:
    """A query as a PostgreSQL function (PL/pgSQL, STABLE: one snapshot throughout) that answers
    the snapshot it read under and, only when that differs from the snapshot the caller names
    (or the caller's transaction has written), the query's document; see `_answer`.

    `sql` calls it with PostgreSQL's own `$n` placeholders (executed without client-side
    rewriting; the first is the snapshot known), `names` are the named parameters the others
    stand for, in order; `logged_sql` is the same call with `%(name)s` placeholders, for Django's
    cursor when queries are logged. The function's name carries a digest of its definition, so a
    changed query is a new function and a process never calls another version's."""

    function: str
    definition: str
    names: tuple[str, ...]
    sql: str
    logged_sql: str

    @classmethod
    def of(cls, template: str) -> "Statement":
        query = " ".join(template.format(**_names()).split())
        if _MOMENTS.search(query):
            raise ImproperlyConfigured("A gate statement must read the data alone, not the clock")
        names: list[str] = []
        for name in re.findall(r"%\((\w+)\)s", query):
            if name not in names:
                names.append(name)
        body = re.sub(r"%\((\w+)\)s", r"rg_\1", query)
        arguments = "".join(f", rg_{name} {_PARAMETER_TYPES[name]}" for name in names)
        template = (
            "CREATE OR REPLACE FUNCTION {function}(rg_known text" + arguments + ", "
            "OUT rg_snapshot text, OUT rg_changed boolean, OUT rg_document text) "
            "LANGUAGE plpgsql STABLE AS $releasegate$ BEGIN "
            # No snapshot for a caller whose transaction has written: it sees rows no other
            # transaction sees, and what it reads is neither kept nor answered from what is.
            "IF pg_current_xact_id_if_assigned() IS NULL THEN "
            "rg_snapshot := pg_current_snapshot()::text; END IF; "
            "rg_changed := rg_snapshot IS NULL OR rg_known IS DISTINCT FROM rg_snapshot; "
            "IF rg_changed THEN " + body + " INTO rg_document; END IF; "
            "END $releasegate$"
        )
        # Named by a digest of the whole definition: any change to it is another function.
        function = f"releasegate_gate_{hashlib.sha256(template.encode()).hexdigest()[:16]}"
        definition = template.replace("{function}", function, 1)
        # The function's name is a digest; every value is a bound parameter.
        call = f"SELECT rg_snapshot, rg_changed, rg_document FROM {function}"  # noqa: S608
        typed = [f"::{_PARAMETER_TYPES[name]}" for name in names]
        numbered = ", ".join(f"${i + 2}{t}" for i, t in enumerate(typed))
        named = ", ".join(f"%({name})s{t}" for name, t in zip(names, typed, strict=True))
        return cls(
            function=function,
            definition=definition,
            names=tuple(names),
            sql=f"{call}($1::text, {numbered})",
            logged_sql=f"{call}(%(rg_known)s::text, {named})",
        )

    def params(self, values: dict[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]


def _gate_sql(scope: str, names: frozenset[str], first: str = "environment") -> str:
    if not names:
        raise ValueError("Name the release: its id, its version or its artifact digest.")
    where = " AND ".join([_SCOPES[scope], *(_CONDITIONS[name] for name in sorted(names))])
    return _GATE_DOCUMENT.replace("{where}", where).replace("{first}", _FIRST[first])


@cache
def _visible_statement(names: frozenset[str]) -> Statement:
    return Statement.of(f"SELECT ({_gate_sql('projects', names)})::text")


@cache
def _bearer_statement(names: frozenset[str]) -> Statement:
    gate = _gate_sql("token", names)
    return Statement.of(
        f"{_TOKEN_CTE}\nSELECT json_build_object({_TOKEN_COLUMNS}\n    'gate', ({gate})\n)::text"
    )


@cache
def _admission_statement() -> Statement:
    """The token and, for each digest of `%(digests)s` in order, its release among the token's
    projects (the newest promoted in the environment, else the newest) with its facts."""
    gate = _gate_sql("token", frozenset({"artifact_digest"}), first="promoted_here").replace(
        "%(artifact_digest)s", "d.digest"
    )
    # Only the models' quoted identifiers are formatted in; every value is a bound parameter.
    return Statement.of(
        f"{_TOKEN_CTE}\nSELECT json_build_object({_TOKEN_COLUMNS}\n    'gates', ("  # noqa: S608
        f"SELECT json_agg(g.document ORDER BY d.n) FROM unnest(%(digests)s::text[]) "
        f"WITH ORDINALITY AS d(digest, n) LEFT JOIN LATERAL ({gate}) g ON TRUE)\n)::text"
    )


def _constants() -> dict[str, Any]:
    return {
        "project_type": ContentType.objects.get_for_model(Project).pk,
        "role_prefix": ROLE_PERMISSION_PREFIX,
        "carry_forward": Veto.Scope.CARRY_FORWARD.value,
        "promoted": Release.State.PROMOTED.value,
        "service": ApiToken.Kind.SERVICE.value,
        "personal": ApiToken.Kind.PERSONAL.value,
    }


# -- executing -------------------------------------------------------------------------------------


_Built = TypeVar("_Built")


@dataclass(frozen=True)
class _Kept:
    snapshot: str
    built: Any


# Documents kept per connection (a new connection, maybe to another server, starts with none).
_KEPT_MAX = 1024


def _kept_with(db: Any) -> dict[tuple[Any, ...], _Kept]:
    """What each question's statement answered last on this connection, under which snapshot."""
    kept: tuple[Any, dict[tuple[Any, ...], _Kept]] | None = getattr(db, "_releasegate_kept", None)
    if kept is None or kept[0] is not db.connection:
        kept = (db.connection, {})
        db._releasegate_kept = kept
    return kept[1]


def _answer(statement: Statement, values: dict[str, Any], build: Callable[[Any], _Built]) -> _Built:
    """`build` of the statement's JSON document (None when it answers NULL), as read now.

    One round trip, whatever happens. The statement's function answers the snapshot it read
    under (`pg_current_snapshot()`: which transactions' writes it sees) and sends the document
    only when that differs from the snapshot the same question was last read under on this
    connection. Two reads under the same snapshot see the same rows, so an unchanged snapshot
    means the document it would send is the one kept: a commit anywhere in the database (a veto,
    a token revoked, anything) changes the snapshot, and the next read sends the document again.
    A caller whose own transaction has written sees rows nobody else does: it gets no snapshot,
    and what it reads is neither answered from what is kept nor kept. Nothing in a document
    depends on the moment it is read (`Statement.of` refuses the clock); what depends on the time
    is decided after, on every request (`token_checked`, `evaluate_gate`).

    It runs prepared (PostgreSQL keeps its plan for the connection; planning it costs several
    times running it; unless DATABASE_PREPARED_STATEMENTS is off) on a psycopg cursor of
    Django's own connection, in autocommit as every read, with Django's health check, thread
    check and error translation. Where queries are logged (DEBUG, query-count tests) it runs
    through Django's cursor instead, so it is logged and counted as any other query."""
    db = connections[DEFAULT_DB_ALIAS]
    params = statement.params(values)
    db.close_if_health_check_failed()
    db.ensure_connection()
    documents = _kept_with(db)
    key = (statement.function, *(tuple(v) if isinstance(v, list) else v for v in params))
    kept = documents.get(key)
    known = None if kept is None else kept.snapshot
    try:
        snapshot, changed, document = _call(db, statement, known, params, values)
    except ProgrammingError as error:
        # A database migrated by another version of the code has not this version's function
        # yet; create it (outside a transaction only: the failed call ended a transaction).
        if not isinstance(error.__cause__, psycopg.errors.UndefinedFunction) or (
            db.in_atomic_block
        ):
            raise
        try:
            with db.cursor() as cursor:
                cursor.execute(statement.definition)
        except DatabaseError:
            pass  # another connection created it meanwhile (a duplicate key in pg_proc)
        snapshot, changed, document = _call(db, statement, known, params, values)
    if not changed and kept is not None:
        return cast(_Built, kept.built)
    built = build(None if document is None else json.loads(document))
    if snapshot is not None:
        if len(documents) >= _KEPT_MAX:
            documents.clear()
        documents[key] = _Kept(snapshot, built)
    return built


def _call(
    db: Any, statement: Statement, known: str | None, params: list[Any], values: dict[str, Any]
) -> tuple[str | None, bool, str | None]:
    if db.queries_logged:
        with db.cursor() as cursor:
            cursor.execute(statement.logged_sql, {**values, "rg_known": known})
            row = cursor.fetchone()
    else:
        # `_answer` opened the connection (after the health check) to find what it keeps.
        db.validate_thread_sharing()
        with db.wrap_database_errors:
            raw = _raw_cursor(db)
            # Prepared on first use, as the connection's prepare_threshold says: 0, or None when
            # DATABASE_PREPARED_STATEMENTS is off (a pooler in transaction mode).
            raw.execute(statement.sql, [known, *params])
            row = raw.fetchone()
    snapshot, changed, document = row
    return snapshot, changed, document


def _raw_cursor(db: Any) -> psycopg.RawCursor[Any]:
    """A cursor kept with the connection: creating one per request costs more than reusing it."""
    kept: psycopg.RawCursor[Any] | None = getattr(db, "_releasegate_gate_cursor", None)
    if kept is None or kept.connection is not db.connection or kept.closed:
        kept = psycopg.RawCursor(db.connection)
        db._releasegate_gate_cursor = kept
    return kept


def _questions() -> list[Statement]:
    """The statement of every question the gate is asked: by release id, by project and
    version, by artifact digest (in a project or not); and an admission review's."""
    shapes = [
        frozenset({"release_id"}),
        frozenset({"project_slug", "version"}),
        frozenset({"artifact_digest"}),
        frozenset({"project_slug", "artifact_digest"}),
    ]
    return [
        *(_visible_statement(shape) for shape in shapes),
        *(_bearer_statement(shape) for shape in shapes),
        _admission_statement(),
    ]


def create_functions(sender: Any = None, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """Create the gate statements' functions that the database has not (after `migrate`: the
    functions read the tables as the migrations left them)."""
    db = connections[using]
    if db.vendor != "postgresql" or using != DEFAULT_DB_ALIAS:
        return
    statements = _questions()
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT proname FROM pg_proc WHERE proname = ANY(%s)",
            [[statement.function for statement in statements]],
        )
        present = {name for (name,) in cursor.fetchall()}
        for statement in statements:
            if statement.function not in present:
                cursor.execute(statement.definition)


# -- reading back ----------------------------------------------------------------------------------

_Fact = TypeVar("_Fact")


@cache
def _moments(cls: type) -> tuple[str, ...]:
    """The fields of a fact dataclass that hold a moment (`datetime`, maybe None)."""
    hints = typing.get_type_hints(cls)
    return tuple(f.name for f in fields(cls) if hints[f.name] in (datetime, datetime | None))


@overload
def moment(value: str) -> datetime: ...


@overload
def moment(value: None) -> None: ...


def moment(value: str | None) -> datetime | None:
    """A timestamp as PostgreSQL writes it in JSON (ISO 8601 with the session's offset), in UTC
    as the ORM gives it."""
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


def _fact(cls: Callable[..., _Fact], item: dict[str, Any]) -> _Fact:
    # A new mapping: the document is kept across requests and read by several threads.
    return cls(**{**item, **{name: moment(item[name]) for name in _moments(cls)}})


def _facts_of(cls: Callable[..., _Fact], items: list[dict[str, Any]] | None) -> tuple[_Fact, ...]:
    return tuple(_fact(cls, item) for item in items or ())


def _policy(policy: dict[str, Any] | None) -> PolicyFacts:
    if policy is None:
        raise NotFound("The project has no gate policy.")
    return PolicyFacts(
        version=policy["version"],
        required_items=tuple(policy["required_items"]),
        required_checks=tuple(policy["required_checks"]),
        required_approvals=dict(policy["required_approvals"]),
        max_approval_age=timedelta(days=policy["max_approval_age_days"]),
        max_review_age=timedelta(days=policy["max_review_age_days"]),
        vulnerability_threshold=policy["vulnerability_threshold"],
        license_denylist=tuple(policy["license_denylist"]),
        external_ci=dict(policy["external_ci"]),
    )


def _break_glass(
    release: ReleaseFacts, rows: list[dict[str, Any]] | None
) -> tuple[BreakGlassFact | None, tuple[ReviewDueFact, ...]]:
    """As `incidents.selectors.break_glass_facts`: the release's latest confirmed break-glass,
    and its project's confirmed ones whose review is not filed."""
    latest: BreakGlassFact | None = None
    due: list[ReviewDueFact] = []
    for row in rows or ():
        if row["release_id"] == release.id:
            latest = BreakGlassFact(
                id=row["id"],
                requested_by=row["requested_by"],
                confirmed_by=row["confirmed_by"],
                confirmed_at=moment(row["confirmed_at"]),
                until=moment(row["until"]),
            )
        if row["project_id"] == release.project_id and not row["reviewed"]:
            due.append(
                ReviewDueFact(
                    break_glass_id=row["id"],
                    release_id=row["release_id"],
                    version=row["version"],
                    due=moment(row["review_due"]),
                )
            )
    return latest, tuple(due)


def facts_from(document: dict[str, Any]) -> GateFacts:
    """The `GateFacts` of one release's document, exactly as `selectors.load_gate_facts` loads
    them; NotFound when its project has no policy."""
    policy = _policy(document["policy"])
    release_row = document["release"]
    promoted = release_row["state"] == Release.State.PROMOTED
    promoted_at = moment(release_row["promoted_at"]) if promoted else None
    release = ReleaseFacts(**{**release_row, "promoted_at": promoted_at})
    break_glass, reviews_due = _break_glass(release, document["break_glasses"])
    return GateFacts(
        release=release,
        policy=policy,
        evidence=_facts_of(EvidenceFact, document["evidence"]),
        approvals=_facts_of(ApprovalFact, document["approvals"]),
        vetoes=_facts_of(VetoFact, document["vetoes"]),
        checks=_facts_of(CheckFact, document["checks"]),
        holds=_facts_of(HoldFact, document["holds"]),
        break_glass=break_glass,
        reviews_due=reviews_due,
        advisory_generation=document["advisory_generation"] or 0,
        waiver_generation=document["waiver_generation"] or 0,
    )


@dataclass(frozen=True)
class GateRead:
    """A release found by the statement: its project, to decide on before `facts()` reads the
    rest of its document (a caller that may not see the project learns nothing of it). Kept
    with its document while the database does not change (`_answer`), it reads the facts once."""

    project_id: int
    document: dict[str, Any] = field(repr=False)
    _facts: list[GateFacts] = field(default_factory=list, repr=False, compare=False)

    def facts(self) -> GateFacts:
        if not self._facts:
            self._facts.append(facts_from(self.document))
        return self._facts[0]


def _read(document: dict[str, Any] | None) -> GateRead | None:
    return None if document is None else GateRead(document["release"]["project_id"], document)


def read_visible(project_ids: list[int], question: GateQuestion) -> GateFacts | None:
    """The release the question names among `project_ids` only, with every fact the gate reads;
    None when there is none."""
    if not project_ids:
        return None
    names = question.names()
    statement = _visible_statement(frozenset(names))
    values = {**_constants(), **names, "project_ids": list(project_ids)}
    read = _answer(statement, {**values, "environment": question.environment}, _read)
    return None if read is None else read.facts()


# Model fields whose value in `row_to_json` is the ORM's value as it is, and those read back.
_AS_IN_JSON = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "BigIntegerField",
        "BooleanField",
        "CharField",
        "EmailField",
        "ForeignKey",
        "IntegerField",
        "JSONField",
        "OneToOneField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
        "SlugField",
        "SmallIntegerField",
        "TextField",
    }
)
_FROM_JSON: dict[str, Callable[[Any], Any]] = {"DateTimeField": moment}


@cache
def _reader(model: type[Model]) -> tuple[list[str], list[tuple[str, Callable[[Any], Any] | None]]]:
    """A model's attribute names, and for each concrete field its column and how its value in
    `row_to_json` becomes the ORM's (None: as it is)."""
    concrete = model._meta.concrete_fields
    columns: list[tuple[str, Callable[[Any], Any] | None]] = []
    for f in concrete:
        kind = f.get_internal_type()
        if kind not in _AS_IN_JSON and kind not in _FROM_JSON:
            raise ImproperlyConfigured(f"{model.__name__}.{f.name}: no reader for a {kind}")
        columns.append((str(f.column), _FROM_JSON.get(kind)))
    return [f.attname for f in concrete], columns


def _values(model: type[Model], row: dict[str, Any] | None) -> list[Any] | None:
    """The values the ORM would load for a row as `row_to_json` writes it (keys: column names),
    in the order of `_reader`'s attribute names."""
    if row is None:
        return None
    _, columns = _reader(model)
    return [
        row[column] if convert is None or row[column] is None else convert(row[column])
        for column, convert in columns
    ]


def _instance(model: type[Model], values: list[Any]) -> Any:
    """A new model instance of kept values (a list or mapping among them copied: an instance
    may be changed, what is kept may not)."""
    attnames, _ = _reader(model)
    fresh = [v.copy() if isinstance(v, list | dict) else v for v in values]
    return model.from_db(DEFAULT_DB_ALIAS, attnames, fresh)


@dataclass(frozen=True)
class _BearerRead:
    """A bearer statement's document: its token's row and its user's, as the ORM would load
    them, and what it found."""

    token: list[Any] | None
    user: list[Any] | None
    gates: tuple[GateRead | None, ...]

    @classmethod
    def of(cls, document: dict[str, Any], gates: tuple[GateRead | None, ...]) -> "_BearerRead":
        return cls(
            _values(ApiToken, document["token"]),
            _values(get_user_model(), document["user"]),
            gates,
        )


def _verified(prefix: str, secret: str, read: _BearerRead) -> ApiToken:
    """The token of a bearer statement's document with its user (new instances on every call),
    if `secret` is its secret and it is active now (`token_checked`, as on every endpoint);
    TokenRejected otherwise."""
    token: ApiToken | None = None
    if read.token is not None:
        token = _instance(ApiToken, read.token)
        user = None
        if token.user_id is not None and read.user is not None:
            user = _instance(get_user_model(), read.user)
        # As `select_related("user")` leaves it: `token.user` is read, never loaded.
        ApiToken.user.field.set_cached_value(token, user)
    return token_checked(prefix, secret, token)


def _bearer_read(document: dict[str, Any]) -> _BearerRead:
    return _BearerRead.of(document, (_read(document["gate"]),))


def _digests_read(count: int) -> Callable[[dict[str, Any]], _BearerRead]:
    def build(document: dict[str, Any]) -> _BearerRead:
        gates = tuple(_read(g) for g in document["gates"] or [None] * count)
        return _BearerRead.of(document, gates)

    return build


def read_bearer(
    prefix: str, key_id: str, secret: str, question: GateQuestion
) -> tuple[ApiToken, GateRead | None]:
    """The bearer token (`token_parts` of it), verified by `token_checked` before anything else
    is read back (TokenRejected when it is not valid, whatever the rest says), and the release it
    names among the projects its row says it may see, in one round trip."""
    names = question.names()
    statement = _bearer_statement(frozenset(names))
    values = {**_constants(), **names, "key_id": key_id, "environment": question.environment}
    read = _answer(statement, values, _bearer_read)
    return _verified(prefix, secret, read), read.gates[0]


def read_bearer_digests(
    prefix: str, key_id: str, secret: str, *, digests: list[str], environment: str
) -> tuple[ApiToken, list[GateRead | None]]:
    """As `read_bearer`, for several artifact digests at once (an admission review): for each
    digest in order, its newest release promoted in `environment` among the token's projects,
    else its newest release there; None for a digest no such release has."""
    values = {**_constants(), "key_id": key_id, "digests": digests, "environment": environment}
    read = _answer(_admission_statement(), values, _digests_read(len(digests)))
    return _verified(prefix, secret, read), list(read.gates)
