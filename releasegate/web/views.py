"""The pages. Each view parses, asks a selector or calls one service, and renders; the rules live
in the services and the gate. An object the caller may not see is a 404."""

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from releasegate.accounts.actors import Actor, Capability
from releasegate.accounts.models import ApiToken
from releasegate.accounts.tokens import token_create, token_revoke
from releasegate.api import present
from releasegate.checks.models import CheckStatus
from releasegate.errors import Conflict, InvalidInput, NotFound, NotPermitted, ReleasegateError
from releasegate.identity.backends import local_login_enabled
from releasegate.identity.selectors import holders_with_sources
from releasegate.identity.sso import sign_in_options
from releasegate.releases.models import EvidenceKind, GovernanceChange, Project, Release
from releasegate.releases.permissions import veto_through
from releasegate.releases.selectors import project_for, release_for, visible_project_ids
from releasegate.releases.services import (
    approval_give,
    evidence_attach,
    governance_change_cancel,
    governance_change_confirm,
    governance_change_reject,
    policy_change,
    release_create,
    release_promote,
    release_submit,
    release_withdraw,
    role_grant,
    role_revoke,
    veto_cast,
    veto_lift,
)
from releasegate.web import selectors
from releasegate.web.dashboard import projects_at_a_glance
from releasegate.web.evidence_forms import EVIDENCE_FORMS, AttachmentForm, kept_rows, row_formset
from releasegate.web.forms import (
    POLICY_FIELD_MAP,
    ApproveForm,
    LiftForm,
    PolicyForm,
    ReleaseCreateForm,
    RoleGrantForm,
    SignInForm,
    TokenCreateForm,
    VetoForm,
    apply_errors,
)
from releasegate.web.incident_panel import incident_panel, reviews_due_for

ReleaseView = Callable[..., HttpResponse]


def actor_of(request: HttpRequest) -> Actor:
    actor = getattr(request, "_releasegate_actor", None)
    if actor is None:
        actor = Actor.for_user(request.user)  # type: ignore[arg-type]
        request._releasegate_actor = actor  # type: ignore[attr-defined]
    return actor


def release_view(view: ReleaseView) -> ReleaseView:
    """Signed in, and the release visible to the caller (else 404); passes the loaded release."""

    @login_required
    @functools.wraps(view)
    def wrapper(request: HttpRequest, release_id: int, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            release = release_for(actor_of(request), release_id)
        except NotFound:
            raise Http404("No such release.") from None
        return view(request, release, *args, **kwargs)

    return wrapper


def project_view(view: ReleaseView) -> ReleaseView:
    @login_required
    @functools.wraps(view)
    def wrapper(request: HttpRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            project = project_for(actor_of(request), slug)
        except NotFound:
            raise Http404("No such project.") from None
        return view(request, project, *args, **kwargs)

    return wrapper


def _refused(request: HttpRequest, error: ReleasegateError, back: str) -> HttpResponse:
    """A service said no: 404 stays a 404, a refusal is a 403 page, anything else goes back with
    the message."""
    if isinstance(error, NotFound):
        raise Http404(error.message)
    if isinstance(error, NotPermitted):
        return render(
            request, "web/refused.html", {"message": error.message, "back": back}, status=403
        )
    messages.error(request, str(error))
    return redirect(back)


class SignInView(LoginView):
    form_class = SignInForm
    template_name = "web/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not local_login_enabled():
            return HttpResponse("Password sign-in is turned off.", status=403)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), **sign_in_options()}


# Home and lists


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    actor = actor_of(request)
    return render(
        request,
        "web/home.html",
        {
            "waiting": selectors.waiting_on_reviewer(request.user),
            "changes": selectors.changes_waiting_on(actor),
            "mine": selectors.requested_by(actor),
            "can_create": bool(selectors.projects_where(actor, Capability.CREATE_RELEASE)),
            "projects": projects_at_a_glance(actor),
            "reviews_due": reviews_due_for(actor),
        },
    )


def _page_number(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), 10_000))
    except ValueError:
        return 1


@login_required
@require_GET
def release_list(request: HttpRequest) -> HttpResponse:
    actor = actor_of(request)
    params = request.GET
    if "\x00" in params.get("q", ""):
        return render(
            request,
            "web/refused.html",
            {"message": "The search text may not contain a NUL character.", "back": "/releases/"},
            status=400,
        )
    projects = list(Project.objects.filter(pk__in=visible_project_ids(actor)))
    filters = selectors.ReleaseFilter(
        project=params.get("project", "")
        if params.get("project") in {p.slug for p in projects}
        else "",
        state=params.get("state", "") if params.get("state") in Release.State.values else "",
        gate=params.get("gate", "") if params.get("gate") in {"cleared", "blocked"} else "",
        q=params.get("q", "")[:100],
    )
    page = selectors.release_list(actor, filters, _page_number(params.get("page")))
    query = params.copy()
    query.pop("page", None)
    return render(
        request,
        "web/release_list.html",
        {
            "page": page,
            "filters": filters,
            "projects": projects,
            "states": Release.State.choices,
            "query": query.urlencode(),
            "scan_limit": selectors.GATE_FILTER_SCAN,
        },
    )


# Creating a release and its evidence


@login_required
@require_http_methods(["GET", "POST"])
def release_new(request: HttpRequest) -> HttpResponse:
    actor = actor_of(request)
    projects = selectors.projects_where(actor, Capability.CREATE_RELEASE)
    if not projects:
        return render(
            request,
            "web/refused.html",
            {"message": "You may not create releases in any project.", "back": "/"},
            status=403,
        )
    form = ReleaseCreateForm(
        request.POST or None, projects=projects, initial={"project": request.GET.get("project")}
    )
    if request.method == "POST" and form.is_valid():
        project = next(p for p in projects if p.slug == form.cleaned_data["project"])
        try:
            release = release_create(
                project=project,
                actor=actor,
                version=form.cleaned_data["version"].strip(),
                artifact_digest=form.cleaned_data["artifact_digest"].strip(),
                environment=form.cleaned_data["environment"].strip(),
                summary=form.cleaned_data["summary"],
            )
        except InvalidInput as error:
            apply_errors(error, form)
        except Conflict as error:
            form.add_error("version" if error.code == "duplicate_version" else None, error.message)
        except ReleasegateError as error:
            return _refused(request, error, reverse("web:release_new"))
        else:
            messages.success(
                request, f"Release {release.version} created. Attach its evidence next."
            )
            return redirect("web:release", release_id=release.pk)
    return render(
        request, "web/release_new.html", {"form": form}, status=400 if form.errors else 200
    )


def _initial_rows(document: Any, spec: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict) or spec.row is None:
        return []
    rows = document.get(spec.rows_key)
    return (
        [spec.row.initial_from(r) for r in rows if isinstance(r, dict)]
        if isinstance(rows, list)
        else []
    )


@release_view
@require_http_methods(["GET", "POST"])
def evidence_edit(request: HttpRequest, release: Release, kind: str) -> HttpResponse:
    if kind not in EvidenceKind.values:
        raise Http404("No such checklist item.")
    actor = actor_of(request)
    back = reverse("web:release", args=[release.pk])
    if not (release.is_editable and actor.can(release.project, Capability.EDIT_RELEASE)):
        return render(
            request,
            "web/refused.html",
            {"message": "You may not edit this release's evidence.", "back": back},
            status=403,
        )
    spec = EVIDENCE_FORMS[kind]
    current = release.evidence.filter(kind=kind, is_current=True).first()
    document = current.document if current is not None else {}
    if request.method == "POST":
        top = spec.top(request.POST, request.FILES)
        formset = row_formset(spec, data=request.POST)
        extras = AttachmentForm(request.POST, request.FILES)
        valid = all([top.is_valid(), formset is None or formset.is_valid(), extras.is_valid()])
        if valid:
            rows, row_forms = kept_rows(formset)
            new_document = top.document(rows)
            if not top.errors:
                try:
                    evidence_attach(
                        release=release,
                        actor=actor,
                        kind=kind,
                        document=new_document,
                        attachment=extras.cleaned_data["attachment"],
                        link=extras.cleaned_data["link"].strip(),
                    )
                except InvalidInput as error:
                    apply_errors(
                        error, top, rows_key=spec.rows_key, row_forms=row_forms, extras=extras
                    )
                except ReleasegateError as error:
                    return _refused(request, error, back)
                else:
                    messages.success(request, f"{EvidenceKind(kind).label} saved.")
                    return redirect(back)
        status = 400
    else:
        top = spec.top(initial=spec.top.initial_from(document) if document else None)
        formset = row_formset(spec, initial=_initial_rows(document, spec))
        extras = AttachmentForm(initial={"link": current.link if current is not None else ""})
        status = 200
    return render(
        request,
        "web/evidence_form.html",
        {
            "release": release,
            "kind": kind,
            "label": EvidenceKind(kind).label,
            "spec": spec,
            "top": top,
            "formset": formset,
            "extras": extras,
            "current": current,
        },
        status=status,
    )


# The release page and its acts


@release_view
@require_GET
def release_page(request: HttpRequest, release: Release) -> HttpResponse:
    actor = actor_of(request)
    detail = selectors.release_detail(actor, release)
    return render(
        request,
        "web/release.html",
        {
            "d": detail,
            "release": release,
            # Both forms sit on one page: distinct ids keep every label tied to its own input.
            "approve_form": ApproveForm(roles=detail.actions.approve_roles, auto_id="approve_%s"),
            "veto_form": VetoForm(roles=detail.actions.veto_roles, auto_id="veto_%s"),
            "passed": CheckStatus.PASSED,
            "incidents": incident_panel(actor, release),
        },
    )


@release_view
@require_POST
def release_submit_view(request: HttpRequest, release: Release) -> HttpResponse:
    back = reverse("web:release", args=[release.pk])
    try:
        release_submit(release=release, actor=actor_of(request))
    except ReleasegateError as error:
        return _refused(request, error, back)
    messages.success(request, "Submitted for review.")
    return redirect(back)


@release_view
@require_POST
def approve(request: HttpRequest, release: Release) -> HttpResponse:
    back = reverse("web:release", args=[release.pk])
    actor = actor_of(request)
    form = ApproveForm(request.POST, roles=[r.value for r in actor.roles(release.project)])
    if not form.is_valid():
        messages.error(request, "Choose the role you approve in.")
        return redirect(back)
    try:
        approval_give(
            release=release,
            actor=actor,
            role=form.cleaned_data["role"],
            comment=form.cleaned_data["comment"],
        )
    except ReleasegateError as error:
        return _refused(request, error, back)
    messages.success(request, f"Approved as {form.cleaned_data['role']}.")
    return redirect(back)


@release_view
@require_http_methods(["GET", "POST"])
def veto(request: HttpRequest, release: Release) -> HttpResponse:
    """The veto's confirmation page (the release page opens the same form in a dialog)."""
    actor = actor_of(request)
    back = reverse("web:release", args=[release.pk])
    policy = release.project.current_policy
    roles = sorted(
        {r.value for r in actor.roles(release.project)} & set(policy.veto_roles if policy else [])
    )
    if not roles:
        return render(
            request,
            "web/refused.html",
            {"message": "You hold no role that may veto here.", "back": back},
            status=403,
        )
    form = VetoForm(request.POST or None, roles=roles)
    if request.method == "POST" and form.is_valid():
        try:
            veto_cast(
                release=release,
                actor=actor,
                role=form.cleaned_data["role"],
                reason=form.cleaned_data["reason"],
                scope=form.cleaned_data["scope"],
            )
        except InvalidInput as error:
            apply_errors(error, form)
        except ReleasegateError as error:
            return _refused(request, error, back)
        else:
            messages.success(request, "Veto recorded. The release is blocked until it is lifted.")
            return redirect(back)
    return render(
        request,
        "web/veto_confirm.html",
        {"release": release, "form": form},
        status=400 if form.errors else 200,
    )


@release_view
@require_http_methods(["GET", "POST"])
def lift(request: HttpRequest, release: Release, veto_id: int) -> HttpResponse:
    actor = actor_of(request)
    back = reverse("web:release", args=[release.pk])
    try:
        veto_obj = veto_through(actor, release, veto_id)
    except NotFound:
        raise Http404("No such veto.") from None
    form = LiftForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            veto_lift(veto=veto_obj, actor=actor, reason=form.cleaned_data["reason"])
        except InvalidInput as error:
            apply_errors(error, form)
        except ReleasegateError as error:
            return _refused(request, error, back)
        else:
            messages.success(request, "Veto lifted.")
            return redirect(back)
    return render(
        request,
        "web/lift.html",
        {"release": release, "veto": veto_obj, "form": form},
        status=400 if form.errors else 200,
    )


@release_view
@require_http_methods(["GET", "POST"])
def promote(request: HttpRequest, release: Release) -> HttpResponse:
    """GET: the confirmation page; POST: promote (the service decides under lock)."""
    back = reverse("web:release", args=[release.pk])
    if not actor_of(request).can(release.project, Capability.PROMOTE):
        return render(
            request,
            "web/refused.html",
            {"message": "You may not promote releases here.", "back": back},
            status=403,
        )
    if request.method == "GET":
        return render(request, "web/promote_confirm.html", {"release": release})
    try:
        release_promote(release=release, actor=actor_of(request))
    except ReleasegateError as error:
        return _refused(request, error, back)
    messages.success(request, f"{release.version} promoted to {release.environment}.")
    return redirect(back)


@release_view
@require_GET
def audit_page(request: HttpRequest, release: Release) -> HttpResponse:
    return render(
        request, "web/audit.html", {"release": release, "events": selectors.audit_events(release)}
    )


@release_view
@require_GET
def audit_json(request: HttpRequest, release: Release) -> JsonResponse:
    """The same document as the API's `GET /api/v1/releases/<id>/audit`, as a download."""
    response = JsonResponse(
        present.audit_trail_dict(release),
        encoder=DjangoJSONEncoder,
        json_dumps_params={"indent": 2},
    )
    response["Content-Disposition"] = f'attachment; filename="release-{release.pk}-audit.json"'
    return response


# Projects


@login_required
@require_GET
def project_list(request: HttpRequest) -> HttpResponse:
    projects = Project.objects.filter(pk__in=visible_project_ids(actor_of(request))).select_related(
        "current_policy"
    )
    return render(request, "web/project_list.html", {"projects": projects})


def _project_context(request: HttpRequest, project: Project, **forms: Any) -> dict[str, Any]:
    actor = actor_of(request)
    policy = project.current_policy
    return {
        "project": project,
        "policy": policy,
        "versions": selectors.policy_versions(project),
        "holders": holders_with_sources(project),
        "can_change_policy": actor.can(project, Capability.CHANGE_POLICY),
        "can_manage_roles": actor.can(project, Capability.MANAGE_ROLES),
        "policy_form": forms.get("policy_form")
        or PolicyForm(initial=PolicyForm.initial_from(policy)),
        "grant_form": forms.get("grant_form") or RoleGrantForm(),
        "pending": selectors.pending_changes(actor, project),
    }


@project_view
@require_GET
def project_page(request: HttpRequest, project: Project) -> HttpResponse:
    return render(request, "web/project.html", _project_context(request, project))


@project_view
@require_POST
def policy_edit(request: HttpRequest, project: Project) -> HttpResponse:
    actor = actor_of(request)
    back = reverse("web:project", args=[project.slug])
    if not actor.can(project, Capability.CHANGE_POLICY):
        return _refused(request, NotPermitted("Only a project admin may change its policy."), back)
    form = PolicyForm(request.POST)
    if form.is_valid():
        policy = project.current_policy
        try:
            new = policy_change(
                project=project,
                actor=actor,
                changes=form.changes(policy.external_ci if policy else {}),
                note=form.cleaned_data["note"],
            )
        except InvalidInput as error:
            for item in error.errors:
                item_field = POLICY_FIELD_MAP.get(item.field, item.field)
                form.add_error(item_field if item_field in form.fields else None, item.message)
        except ReleasegateError as error:
            return _refused(request, error, back)
        else:
            if isinstance(new, GovernanceChange):
                messages.warning(request, _waits(new))
            else:
                messages.success(request, f"Policy version {new.version} is now in force.")
            return redirect(back)
    return render(
        request,
        "web/project.html",
        _project_context(request, project, policy_form=form),
        status=400,
    )


@project_view
@require_POST
def role_change(request: HttpRequest, project: Project, act: str) -> HttpResponse:
    if act not in {"grant", "revoke"}:
        raise Http404("No such act.")
    actor = actor_of(request)
    back = reverse("web:project", args=[project.slug])
    if not actor.can(project, Capability.MANAGE_ROLES):
        return _refused(request, NotPermitted("Only a project admin may change roles."), back)
    form = RoleGrantForm(request.POST)
    if form.is_valid():
        user = (
            get_user_model()
            .objects.filter(username=form.cleaned_data["username"], is_active=True)
            .first()
        )
        if user is None:
            form.add_error("username", "No active user with this username.")
        else:
            service = role_grant if act == "grant" else role_revoke
            try:
                pending = service(
                    project=project, user=user, role=form.cleaned_data["role"], actor=actor
                )
            except InvalidInput as error:
                apply_errors(error, form)
            except ReleasegateError as error:
                return _refused(request, error, back)
            else:
                if pending is not None:
                    messages.warning(request, _waits(pending))
                else:
                    verb = "granted to" if act == "grant" else "revoked from"
                    messages.success(
                        request, f"Role {form.cleaned_data['role']} {verb} {user.get_username()}."
                    )
                return redirect(back)
    return render(
        request, "web/project.html", _project_context(request, project, grant_form=form), status=400
    )


def _waits(change: GovernanceChange) -> str:
    guard = "security" if change.kind == GovernanceChange.Kind.POLICY else change.role
    return (
        f"Nothing changed yet: request {change.pk} waits for a {guard} holder other than you "
        "to confirm it."
    )


_DECISIONS: dict[str, tuple[Callable[..., GovernanceChange], str]] = {
    "confirm": (governance_change_confirm, "Confirmed and applied."),
    "reject": (governance_change_reject, "Rejected; nothing changed."),
    "cancel": (governance_change_cancel, "Your request is cancelled."),
}


@project_view
@require_POST
def governance_decide(
    request: HttpRequest, project: Project, change_id: int, act: str
) -> HttpResponse:
    """Confirm, reject or cancel a pending governance request (the service decides who may)."""
    if act not in _DECISIONS:
        raise Http404("No such act.")
    change = GovernanceChange.objects.filter(pk=change_id, project=project).first()
    if change is None:
        raise Http404("No such request.")
    service, done = _DECISIONS[act]
    back = reverse("web:project", args=[project.slug])
    try:
        service(change=change, actor=actor_of(request), reason=request.POST.get("reason", ""))
    except ReleasegateError as error:
        return _refused(request, error, back)
    messages.success(request, done)
    return redirect(back)


@release_view
@require_POST
def withdraw(request: HttpRequest, release: Release) -> HttpResponse:
    back = reverse("web:release", args=[release.pk])
    try:
        release_withdraw(
            release=release, actor=actor_of(request), reason=request.POST.get("reason")
        )
    except ReleasegateError as error:
        return _refused(request, error, back)
    messages.success(request, f"{release.version} withdrawn.")
    return redirect(back)


# Personal tokens


def _my_tokens(request: HttpRequest) -> QuerySet[ApiToken]:
    """The signed-in person's own personal tokens; nobody sees or revokes another's."""
    user_id = request.user.pk
    assert user_id is not None  # behind login_required
    return ApiToken.objects.filter(kind=ApiToken.Kind.PERSONAL, user_id=user_id)


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    actor = actor_of(request)
    form = TokenCreateForm(request.POST or None)
    plaintext = None
    if request.method == "POST" and form.is_valid():
        try:
            token, plaintext = token_create(
                actor=actor,
                kind=ApiToken.Kind.PERSONAL,
                name=form.cleaned_data["name"],
                user=request.user,
                expires_in=timedelta(days=form.cleaned_data["expires_in_days"]),
            )
        except InvalidInput as error:
            apply_errors(error, form)
        else:
            form = TokenCreateForm()
    listed = _my_tokens(request).order_by("-created_at")
    response = render(
        request,
        "web/tokens.html",
        {"form": form, "plaintext": plaintext, "tokens": listed, "now": timezone.now()},
        status=400 if form.errors else 200,
    )
    if plaintext is not None:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    token = _my_tokens(request).filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    try:
        token_revoke(token=token, actor=actor_of(request))
    except ReleasegateError as error:
        return _refused(request, error, reverse("web:tokens"))
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("web:tokens")
