"""The Kubernetes validating admission webhook (AdmissionReview admission.k8s.io/v1).

Every image of a Pod, or of the pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet,
Job or CronJob, must be pinned by digest and belong to a release that the token's project promoted
in the webhook's environment and that the gate clears now. On PostgreSQL a review costs one
statement whatever its number of images (`answer_bearer`: the token and, for every digest, its
release with every fact the gate reads, as the gate's own one statement reads them); elsewhere
the gate is asked once per distinct digest (`answer`).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from releasegate.accounts.actors import Actor, Capability
from releasegate.accounts.models import ApiToken
from releasegate.errors import FieldError, InvalidInput, NotFound, NotPermitted
from releasegate.releases import gate_statement
from releasegate.releases.gate import GateDecision
from releasegate.releases.identifiers import ENVIRONMENT_RE
from releasegate.releases.models import Release
from releasegate.releases.questions import GateQuestion
from releasegate.releases.selectors import decision_from_facts, gate_decision_among

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
# Where each kind keeps its pod spec.
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
PINNED_RE = re.compile(r"\A[^\s@]+@(sha256:[0-9a-f]{64})\Z")
MAX_UID = 128
MAX_IMAGES = 256


class Malformed(Exception):
    """The review names its uid but its object cannot be read: answered as a denial."""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    message: str = ""


def admission_project_ids(actor: Actor) -> list[int]:
    """The projects whose releases this caller answers admission reviews for: a service token
    with the `admission:review` scope answers for its one project (without reading anything
    else of it); anyone else for none."""
    token = actor.token
    if token is None or not token.project_id:
        return []
    return [token.project_id] if actor.token_grants(Capability.REVIEW_ADMISSION) else []


def review_uid(body: Any) -> str:
    """The request uid of an AdmissionReview; a 400 naming the field when the body is not one
    (no uid to answer to: an API server never sends that)."""
    if not isinstance(body, dict):
        raise InvalidInput(
            "The body must be an AdmissionReview object.",
            code="not_an_admission_review",
            errors=[FieldError("(document)", "not an object")],
        )
    problems = []
    if body.get("apiVersion") != API_VERSION:
        problems.append(FieldError("apiVersion", f"must be {API_VERSION}"))
    if body.get("kind") != KIND:
        problems.append(FieldError("kind", f"must be {KIND}"))
    request = body.get("request")
    uid = request.get("uid") if isinstance(request, dict) else None
    if not isinstance(uid, str) or not uid or len(uid) > MAX_UID:
        problems.append(FieldError("request.uid", f"must be a string of 1 to {MAX_UID} characters"))
    if problems:
        raise InvalidInput(
            "The body is not an AdmissionReview admission.k8s.io/v1.",
            code="not_an_admission_review",
            errors=problems,
        )
    assert isinstance(uid, str)
    return uid


def _pod_spec(request: dict[str, Any]) -> dict[str, Any]:
    kind = request.get("kind")
    kind_name = kind.get("kind") if isinstance(kind, dict) else None
    obj = request.get("object")
    if not isinstance(obj, dict):
        raise Malformed("request.object is missing or not an object")
    if not isinstance(kind_name, str):
        kind_name = obj.get("kind")
    path = _POD_SPEC_PATHS.get(kind_name) if isinstance(kind_name, str) else None
    if path is None:
        raise Malformed(
            f"releasegate reviews {', '.join(_POD_SPEC_PATHS)}, not {kind_name!r}: "
            "narrow the webhook's rules"
        )
    node: dict[str, Any] = obj
    walked = "object"
    for step in path:
        walked += f".{step}"
        child = node.get(step)
        if not isinstance(child, dict):
            raise Malformed(f"{kind_name}: {walked} is missing or not an object")
        node = child
    return node


def images_of(request: dict[str, Any]) -> list[str]:
    """Every image of every container, init container and ephemeral container, in order."""
    spec = _pod_spec(request)
    images: list[str] = []
    for key in _CONTAINER_LISTS:
        containers = spec.get(key)
        if containers is None:
            continue
        if not isinstance(containers, list):
            raise Malformed(f"spec.{key} is not a list")
        for index, container in enumerate(containers):
            image = container.get("image") if isinstance(container, dict) else None
            if not isinstance(image, str) or not image:
                raise Malformed(f"spec.{key}[{index}].image is missing or not a string")
            images.append(image)
    if not images:
        raise Malformed("the pod spec has no containers")
    if len(images) > MAX_IMAGES:
        raise Malformed(f"more than {MAX_IMAGES} images")
    return images


def pinned_digests(request: dict[str, Any]) -> list[str]:
    """The distinct digests of the review's images pinned by digest, in order; none for a
    removal or a review whose object cannot be read."""
    if request.get("operation") == "DELETE":
        return []
    try:
        images = images_of(request)
    except Malformed:
        return []
    matches = (PINNED_RE.match(image) for image in images)
    return list(dict.fromkeys(match.group(1) for match in matches if match is not None))


def _unknown(digest: str) -> str:
    return f"unknown digest {digest} (no release of this project has it)"


def _not_promoted(release: Any, environment: str) -> str:
    return (
        f"{release.project_slug} {release.version} is not promoted in {environment} "
        f"(it is {release.state} in {release.environment})"
    )


def _blocked(decision: GateDecision) -> str | None:
    if decision.cleared:
        return None
    release = decision.release
    blockers = "; ".join(f"{b.code}: {b.message}" for b in decision.blockers)
    return f"{release.project_slug} {release.version} is blocked: {blockers}"


def _promoted_here(project_ids: list[int], digest: str, environment: str) -> Release | None:
    """The newest release of these projects with this digest promoted in the environment."""
    return (
        Release.objects.filter(
            project_id__in=project_ids,
            artifact_digest=digest,
            environment=environment,
            state=Release.State.PROMOTED,
        )
        .only("id")
        .order_by("-created_at", "-id")
        .first()
    )


def _digest_problem(project_ids: list[int], digest: str, environment: str) -> str | None:
    """Why images with this digest may not run in the environment, or None when they may."""
    try:
        decision: GateDecision = gate_decision_among(
            project_ids, GateQuestion(artifact_digest=digest)
        )
    except NotFound:
        return _unknown(digest)
    release = decision.release
    if release.environment != environment or release.state != Release.State.PROMOTED:
        promoted = _promoted_here(project_ids, digest, environment)
        if promoted is None:
            return _not_promoted(release, environment)
        decision = gate_decision_among(project_ids, GateQuestion(release_id=promoted.pk))
    return _blocked(decision)


def _read_problem(
    project_ids: list[int], digest: str, read: gate_statement.GateRead | None, environment: str
) -> str | None:
    """As `_digest_problem`, from the release the one statement found for the digest (its newest
    promoted in the environment, else its newest)."""
    if read is None or read.project_id not in project_ids:
        return _unknown(digest)
    try:
        facts = read.facts()
    except NotFound:
        return _unknown(digest)
    release = facts.release
    if release.environment != environment or release.state != Release.State.PROMOTED:
        return _not_promoted(release, environment)
    return _blocked(decision_from_facts(facts))


def _checked(actor: Actor, body: Any, environment: str) -> tuple[list[int], str]:
    """The projects the caller answers for and the review's uid: 403 for a caller that may not
    review, 404 for an environment name that cannot exist, 400 for a body that is no review."""
    project_ids = admission_project_ids(actor)
    if not project_ids:
        raise NotPermitted(
            "Admission reviews need a service token with the admission:review scope.",
            code="missing_scope",
        )
    if not ENVIRONMENT_RE.fullmatch(environment):
        raise NotFound("No such environment.")
    return project_ids, review_uid(body)


def answer(actor: Actor, body: Any, environment: str) -> dict[str, Any]:
    """The AdmissionReview answering `body` for the environment (see `_checked` for refusals)."""
    project_ids, uid = _checked(actor, body, environment)

    def problems(digests: list[str]) -> dict[str, str | None]:
        return {d: _digest_problem(project_ids, d, environment) for d in digests}

    return response_body(uid, review(body["request"], environment, problems))


def answer_bearer(
    prefix: str, key_id: str, secret: str, body: Any, environment: str
) -> tuple[ApiToken, dict[str, Any]]:
    """As `answer`, for the bearer token (`token_parts` of it) in the same statement as every
    digest's release and facts (PostgreSQL): the token verified by `token_checked` first
    (TokenRejected), then the same refusals in the same order."""
    request = body.get("request") if isinstance(body, dict) else None
    digests = pinned_digests(request) if isinstance(request, dict) else []
    token, reads = gate_statement.read_bearer_digests(
        prefix, key_id, secret, digests=digests, environment=environment
    )
    project_ids, uid = _checked(Actor.for_token(token), body, environment)
    found = dict(zip(digests, reads, strict=True))

    def problems(asked: list[str]) -> dict[str, str | None]:
        return {d: _read_problem(project_ids, d, found[d], environment) for d in asked}

    return token, response_body(uid, review(body["request"], environment, problems))


def review(
    request: dict[str, Any],
    environment: str,
    problems_of: Callable[[list[str]], dict[str, str | None]],
) -> Verdict:
    """Decide the `request` of a review whose uid was read already; `problems_of` says, for each
    pinned digest, why it may not run here (None: it may)."""
    if request.get("operation") == "DELETE":
        return Verdict(True)  # removing workloads deploys nothing
    try:
        images = images_of(request)
    except Malformed as unreadable:
        return Verdict(False, f"releasegate cannot read this review: {unreadable}")
    problem_of = problems_of(pinned_digests(request))
    problems: list[str] = []
    for image in dict.fromkeys(images):
        match = PINNED_RE.match(image)
        if match is None:
            problems.append(f"image {image}: not pinned by digest (use <image>@sha256:<hex>)")
            continue
        problem = problem_of[match.group(1)]
        if problem is not None:
            problems.append(f"image {image}: {problem}")
    if problems:
        return Verdict(False, f"releasegate denies ({environment}): " + " | ".join(problems))
    return Verdict(True)


def response_body(uid: str, verdict: Verdict) -> dict[str, Any]:
    answer: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        answer["status"] = {"code": 403, "message": verdict.message}
    return {"apiVersion": API_VERSION, "kind": KIND, "response": answer}
