"""Pages of the identity area: single sign-on (start, callback, sign-out) and a project's CI
trust policies and IdP group mappings. Thin: parse, ask a service, render."""

import logging
from datetime import timedelta
from typing import Any

import requests
from authlib.integrations.base_client import OAuthError
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from joserfc.errors import JoseError

from releasegate.errors import InvalidInput, ReleasegateError
from releasegate.identity import selectors, sso
from releasegate.identity.forms import GroupMappingForm, TrustPolicyForm
from releasegate.identity.permissions import can_manage_trust, can_map_groups
from releasegate.identity.services import (
    group_mapping_add,
    group_mapping_remove,
    sso_sign_in,
    trust_policy_add,
    trust_policy_remove,
)
from releasegate.releases.models import GovernanceChange, Project
from releasegate.releases.permissions import guarded_roles
from releasegate.web.forms import apply_errors
from releasegate.web.views import _refused, actor_of, project_view

logger = logging.getLogger(__name__)

SESSION_NEXT = "releasegate_sso_next"
SESSION_ID_TOKEN = "releasegate_sso_id_token"
BACKEND = "releasegate.identity.backends.LocalPasswordBackend"


def _failed(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    return render(
        request,
        "identity/sso_failed.html",
        {"message": message, **sso.sign_in_options()},
        status=status,
    )


@require_GET
def sso_start(request: HttpRequest) -> HttpResponse:
    if not sso.sso_enabled():
        raise Http404("Single sign-on is not configured.")
    wanted = request.GET.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    request.session[SESSION_NEXT] = wanted if safe and wanted else settings.LOGIN_REDIRECT_URL
    callback = request.build_absolute_uri(reverse("identity:sso_callback"))
    try:
        response: HttpResponse = sso.client().authorize_redirect(request, callback)
    except requests.RequestException:
        return _failed(request, "The identity provider cannot be reached; try again.", 503)
    return response


@require_GET
def sso_callback(request: HttpRequest) -> HttpResponse:
    """The IdP sends the person back here with a code: checked against the state, PKCE
    verifier and nonce this browser's session keeps, then exchanged once."""
    if not sso.sso_enabled():
        raise Http404("Single sign-on is not configured.")
    client = sso.client()
    try:
        token = client.authorize_access_token(request)
        claims = token.get("userinfo")
        if not claims or "id_token" not in token:
            return _failed(request, "The identity provider sent no ID token.")
        profile = dict(client.userinfo(token=token))
    except (OAuthError, JoseError, ValueError) as error:
        logger.info("sso sign-in refused: %s", error.__class__.__name__)
        return _failed(
            request, "Sign-in failed: the answer from the identity provider is not valid."
        )
    except requests.RequestException:
        return _failed(request, "The identity provider cannot be reached; try again.", 503)
    if profile.get("sub") != claims.get("sub"):
        return _failed(request, "Sign-in failed: the identity provider's answers disagree.")
    issuer = str(claims.get("iss") or "")
    if issuer != settings.OIDC_ISSUER:
        return _failed(request, "Sign-in failed: the ID token names another issuer.")
    try:
        result = sso_sign_in(
            issuer=issuer,
            claims={**profile, "sub": claims["sub"]},
            groups_claim=settings.OIDC_GROUPS_CLAIM,
        )
    except ReleasegateError as refused:
        return _failed(request, refused.message, 403)
    wanted = request.session.get(SESSION_NEXT) or settings.LOGIN_REDIRECT_URL
    login(request, result.user, backend=BACKEND)
    request.session[SESSION_ID_TOKEN] = token["id_token"]
    for label in result.refused:
        messages.warning(request, f"A role from your IdP groups was not granted: {label}")
    return redirect(wanted)


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """End the session here, then at the IdP when the person signed in there and it offers an
    end-session endpoint (RP-initiated logout)."""
    id_token = request.session.get(SESSION_ID_TOKEN)
    logout(request)
    if id_token and sso.sso_enabled():
        try:
            end = sso.metadata().get("end_session_endpoint")
            if end:
                back = request.build_absolute_uri(str(settings.LOGOUT_REDIRECT_URL))
                url = sso.client().create_logout_url(
                    post_logout_redirect_uri=back,
                    id_token_hint=id_token,
                    client_id=settings.OIDC_CLIENT_ID,
                )["url"]
                # A page that moves on by itself rather than a redirect: the sign-out form's
                # CSP (form-action 'self') rightly forbids a form post that ends elsewhere.
                return render(request, "identity/signed_out.html", {"end_session_url": url})
        except requests.RequestException:
            pass  # signed out here; the IdP's own session ends when it expires
    return redirect(str(settings.LOGOUT_REDIRECT_URL))


# A project's identities -------------------------------------------------------------------------


def _context(request: HttpRequest, project: Project, **forms: Any) -> dict[str, Any]:
    actor = actor_of(request)
    by_hand, from_idp = selectors.roles_by_source(project)
    return {
        "project": project,
        "policies": selectors.trust_policies_of(project),
        "mappings": selectors.group_mappings_of(project),
        "mapping_requests": selectors.group_mapping_requests_of(project),
        "by_hand": by_hand,
        "from_idp": from_idp,
        "guarded": sorted(r.value for r in guarded_roles(project.current_policy)),
        "can_manage_trust": can_manage_trust(actor, project),
        "can_map_groups": can_map_groups(actor, project),
        "trust_form": forms.get("trust_form") or TrustPolicyForm(),
        "group_form": forms.get("group_form") or GroupMappingForm(),
    }


def _back(project: Project) -> str:
    return reverse("identity:project", args=[project.slug])


@project_view
@require_GET
def project_identities(request: HttpRequest, project: Project) -> HttpResponse:
    return render(request, "identity/project.html", _context(request, project))


@project_view
@require_POST
def trust_policy_add_view(request: HttpRequest, project: Project) -> HttpResponse:
    form = TrustPolicyForm(request.POST)
    if form.is_valid():
        try:
            policy = trust_policy_add(
                project=project,
                actor=actor_of(request),
                issuer=form.cleaned_data["issuer"],
                audience=form.cleaned_data["audience"],
                claims=form.cleaned_data["claims"],
                scopes=form.cleaned_data["scopes"],
                lifetime=timedelta(minutes=form.cleaned_data["lifetime_minutes"]),
            )
        except InvalidInput as error:
            apply_errors(error, form)
        except ReleasegateError as error:
            return _refused(request, error, _back(project))
        else:
            messages.success(request, f"Trust policy {policy.pk} is in force.")
            return redirect(_back(project))
    context = _context(request, project, trust_form=form)
    return render(request, "identity/project.html", context, status=400)


@project_view
@require_POST
def trust_policy_remove_view(
    request: HttpRequest, project: Project, policy_id: int
) -> HttpResponse:
    policy = selectors.trust_policy_for(project, policy_id)
    if policy is None:
        raise Http404("No such trust policy.")
    try:
        trust_policy_remove(policy=policy, actor=actor_of(request))
    except ReleasegateError as error:
        return _refused(request, error, _back(project))
    messages.success(request, f"Trust policy {policy.pk} removed.")
    return redirect(_back(project))


def _waits(change: GovernanceChange) -> str:
    return (
        f"Nothing changed yet: request {change.pk} waits for a {change.role} holder other than "
        "you to confirm it, on the project page."
    )


@project_view
@require_POST
def group_mapping_add_view(request: HttpRequest, project: Project) -> HttpResponse:
    form = GroupMappingForm(request.POST)
    if form.is_valid():
        try:
            made = group_mapping_add(
                project=project,
                actor=actor_of(request),
                group=form.cleaned_data["group"],
                role=form.cleaned_data["role"],
            )
        except InvalidInput as error:
            apply_errors(error, form)
        except ReleasegateError as error:
            return _refused(request, error, _back(project))
        else:
            if isinstance(made, GovernanceChange):
                messages.warning(request, _waits(made))
            else:
                messages.success(
                    request,
                    f"Members of {made.group} get {made.role} at their next sign-in.",
                )
            return redirect(_back(project))
    context = _context(request, project, group_form=form)
    return render(request, "identity/project.html", context, status=400)


@project_view
@require_POST
def group_mapping_remove_view(
    request: HttpRequest, project: Project, mapping_id: int
) -> HttpResponse:
    mapping = selectors.group_mapping_for(project, mapping_id)
    if mapping is None:
        raise Http404("No such group mapping.")
    try:
        pending = group_mapping_remove(mapping=mapping, actor=actor_of(request))
    except ReleasegateError as error:
        return _refused(request, error, _back(project))
    if pending is not None:
        messages.warning(request, _waits(pending))
    else:
        messages.success(request, "Mapping removed; the roles it gave are revoked.")
    return redirect(_back(project))
