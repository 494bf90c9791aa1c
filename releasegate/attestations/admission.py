"""The Kubernetes validating admission webhook (AdmissionReview admission.k8s.io/v1).

Every image of a Pod, or of the pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet,
Job or CronJob, must be pinned by digest and belong to a release that the token's project promoted
in the webhook's environment and that the gate clears now. The gate is asked once per distinct
digest (its one-statement fast path on PostgreSQL); only a digest whose newest release is not the
promoted one of this environment costs one more query to find that one.
"""

import re
from dataclasses import dataclass
from typing import Any

from releasegate.accounts.actors import Actor, Capability
from releasegate.errors import FieldError, InvalidInput, NotFound, NotPermitted
from releasegate.releases.gate import GateDecision
from releasegate.releases.identifiers import ENVIRONMENT_RE
from releasegate.releases.models import Release
from releasegate.releases.selectors import gate_decision_among

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
        decision: GateDecision = gate_decision_among(project_ids, artifact_digest=digest)
    except NotFound:
        return f"unknown digest {digest} (no release of this project has it)"
    release = decision.release
    if release.environment != environment or release.state != Release.State.PROMOTED:
        promoted = _promoted_here(project_ids, digest, environment)
        if promoted is None:
            return (
                f"{release.project_slug} {release.version} is not promoted in {environment} "
                f"(it is {release.state} in {release.environment})"
            )
        decision = gate_decision_among(project_ids, release_id=promoted.pk)
        release = decision.release
    if decision.cleared:
        return None
    blockers = "; ".join(f"{b.code}: {b.message}" for b in decision.blockers)
    return f"{release.project_slug} {release.version} is blocked: {blockers}"


def answer(actor: Actor, body: Any, environment: str) -> dict[str, Any]:
    """The AdmissionReview answering `body` for the environment; 403 for a caller that may not
    review, 404 for an environment name that cannot exist, 400 for a body that is no review."""
    project_ids = admission_project_ids(actor)
    if not project_ids:
        raise NotPermitted(
            "Admission reviews need a service token with the admission:review scope.",
            code="missing_scope",
        )
    if not ENVIRONMENT_RE.fullmatch(environment):
        raise NotFound("No such environment.")
    uid = review_uid(body)
    return response_body(uid, review(project_ids, body["request"], environment))


def review(project_ids: list[int], request: dict[str, Any], environment: str) -> Verdict:
    """Decide the `request` of a review whose uid was read already."""
    if request.get("operation") == "DELETE":
        return Verdict(True)  # removing workloads deploys nothing
    try:
        images = images_of(request)
    except Malformed as unreadable:
        return Verdict(False, f"releasegate cannot read this review: {unreadable}")
    problems: list[str] = []
    decided: dict[str, str | None] = {}
    for image in dict.fromkeys(images):
        match = PINNED_RE.match(image)
        if match is None:
            problems.append(f"image {image}: not pinned by digest (use <image>@sha256:<hex>)")
            continue
        digest = match.group(1)
        if digest not in decided:
            decided[digest] = _digest_problem(project_ids, digest, environment)
        problem = decided[digest]
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
