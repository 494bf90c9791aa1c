"""POST /api/v1/admission/<environment>: the validating admission webhook, fed real
AdmissionReview documents as a kube-apiserver sends them."""

import copy

import pytest

from releasegate.accounts.actors import Scope
from releasegate.attestations.models import Revocation
from tests.api.conftest import Caller, personal_token, service_token
from tests.attestations.conftest import (
    REGISTRY,
    admission_review,
    ask,
    container,
    decided,
    image,
    pod_spec,
    promoted,
    veto,
    workload,
)
from tests.builders import digest_of
from tests.releases.gatehelpers import cleared_release

pytestmark = pytest.mark.django_db


def test_pod_whose_images_are_promoted_and_cleared_is_allowed(personas, admission_caller):
    app = promoted(personas, version="1.0.0")
    sidecar = promoted(personas, version="1.0.1")
    review = admission_review(workload("Pod", pod_spec(image(app), image(sidecar, "proxy"))))
    assert decided(admission_caller, review) == {
        "uid": review["request"]["uid"],
        "allowed": True,
    }


def test_deployment_with_an_unpinned_init_container_is_denied_naming_it(personas, admission_caller):
    app = promoted(personas)
    spec = pod_spec(image(app), init=("busybox:1.36",))
    answer = decided(admission_caller, admission_review(workload("Deployment", spec)))
    assert answer["allowed"] is False
    message = answer["status"]["message"]
    assert "image busybox:1.36: not pinned by digest" in message
    assert REGISTRY not in message  # the pinned, promoted image is not the problem


def test_deployment_with_init_container_of_promoted_releases_is_allowed(personas, admission_caller):
    app = promoted(personas, version="1.0.0")
    migrate = promoted(personas, version="1.0.0-migrate")
    spec = pod_spec(image(app), init=(image(migrate, "migrations"),))
    for kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        assert decided(admission_caller, admission_review(workload(kind, spec)))["allowed"], kind


def test_cronjob_with_an_unknown_digest_is_denied(personas, admission_caller):
    promoted(personas)
    unknown = digest_of("never released")
    cron = workload("CronJob", pod_spec(f"{REGISTRY}@{unknown}"))
    answer = decided(admission_caller, admission_review(cron))
    assert answer["allowed"] is False
    assert f"unknown digest {unknown}" in answer["status"]["message"]


def test_ephemeral_debug_container_of_a_release_not_promoted_is_denied(personas, admission_caller):
    app = promoted(personas, version="1.0.0")
    debug = cleared_release(personas, version="1.0.1-debug")  # cleared, but never promoted
    pod = workload("Pod", pod_spec(image(app)))
    updated = copy.deepcopy(pod)
    updated["spec"]["ephemeralContainers"] = [
        {**container("debugger", image(debug, "debug")), "targetContainerName": "c0"}
    ]
    review = admission_review(
        updated, operation="UPDATE", sub_resource="ephemeralcontainers", old=pod
    )
    answer = decided(admission_caller, review)
    assert answer["allowed"] is False
    assert (
        f"image {image(debug, 'debug')}: support-assistant 1.0.1-debug is not promoted in "
        "production (it is in_review in production)"
    ) in answer["status"]["message"]


def test_release_promoted_in_staging_is_denied_in_production(personas, admission_caller):
    staged = promoted(personas, environment="staging")
    review = admission_review(workload("Pod", pod_spec(image(staged))))
    assert decided(admission_caller, review, "staging")["allowed"] is True
    answer = decided(admission_caller, review, "production")
    assert answer["allowed"] is False
    assert (
        "is not promoted in production (it is promoted in staging)" in (answer["status"]["message"])
    )


def test_same_digest_promoted_here_is_found_behind_a_newer_release_elsewhere(
    personas, admission_caller
):
    digest = digest_of("one image, two environments")
    promoted(personas, version="1.0.0", artifact=digest)
    cleared_release(personas, version="1.0.0-staging", environment="staging", artifact=digest)
    review = admission_review(workload("Pod", pod_spec(f"{REGISTRY}@{digest}")))
    assert decided(admission_caller, review)["allowed"] is True


def test_veto_after_promotion_denies_the_next_review_and_revokes(personas, admission_caller):
    app = promoted(personas)
    review = admission_review(workload("Deployment", pod_spec(image(app))))
    assert decided(admission_caller, review)["allowed"] is True
    veto(personas, app)
    answer = decided(
        admission_caller, admission_review(workload("Deployment", pod_spec(image(app))))
    )
    assert answer["allowed"] is False
    message = answer["status"]["message"]
    assert f"image {image(app)}: support-assistant 1.0.0 is blocked: veto:" in message
    assert "prompt injection reaches the CRM tool" in message


def test_every_distinct_problem_is_named_once(personas, admission_caller):
    app = promoted(personas)
    unknown = f"{REGISTRY}@{digest_of('x')}"
    spec = pod_spec(image(app), "nginx", unknown, unknown)
    message = decided(admission_caller, admission_review(workload("Pod", spec)))["status"][
        "message"
    ]
    assert message.count("image nginx: not pinned") == 1
    assert message.count(f"image {unknown}: unknown digest") == 1


@pytest.mark.parametrize(
    "bad",
    [
        "nginx:latest",
        f"{REGISTRY}@sha256:{'A' * 64}",  # upper-case hex is not a digest
        f"{REGISTRY}@sha256:{'a' * 63}",
        f"{REGISTRY}@sha512:{'a' * 128}",
        f"{REGISTRY}@sha256:{'a' * 64}\n",
    ],
)
def test_images_not_pinned_by_a_whole_sha256_are_denied(personas, admission_caller, bad):
    answer = decided(admission_caller, admission_review(workload("Pod", pod_spec(bad))))
    assert answer["allowed"] is False
    assert "not pinned by digest" in answer["status"]["message"]


def test_delete_is_allowed(personas, admission_caller):
    review = admission_review(workload("Pod", pod_spec("nginx")), operation="DELETE")
    assert decided(admission_caller, review)["allowed"] is True


@pytest.mark.parametrize(
    ("mangle", "said"),
    [
        (lambda r: r["request"].update(object=None), "request.object is missing"),
        (lambda r: r["request"]["object"].pop("spec"), "Pod: object.spec is missing"),
        (lambda r: r["request"]["object"]["spec"].update(containers="nginx"), "not a list"),
        (lambda r: r["request"]["object"]["spec"].update(containers=[]), "has no containers"),
        (
            lambda r: r["request"]["object"]["spec"]["containers"][0].pop("image"),
            "spec.containers[0].image is missing",
        ),
        (
            lambda r: r["request"]["kind"].update(kind="ConfigMap"),
            "not 'ConfigMap': narrow the webhook's rules",
        ),
    ],
)
def test_a_review_whose_object_cannot_be_read_is_denied_with_a_clear_message(
    personas, admission_caller, mangle, said
):
    app = promoted(personas)
    review = admission_review(workload("Pod", pod_spec(image(app))))
    mangle(review)
    answer = decided(admission_caller, review)
    assert answer["allowed"] is False
    assert "releasegate cannot read this review" in answer["status"]["message"]
    assert said in answer["status"]["message"]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ([], ["(document)"]),
        (
            {
                "apiVersion": "admission.k8s.io/v1beta1",
                "kind": "AdmissionReview",
                "request": {"uid": "u"},
            },
            ["apiVersion"],
        ),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "Pod", "request": {"uid": "u"}}, ["kind"]),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, ["request.uid"]),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 7}},
            ["request.uid"],
        ),
    ],
)
def test_a_body_that_is_no_admission_review_is_a_400_naming_the_field(
    personas, admission_caller, body, fields
):
    status, answer = ask(admission_caller, body)
    assert status == 400
    assert answer["code"] == "not_an_admission_review"
    assert [e["field"] for e in answer["errors"]] == fields


def test_a_body_that_is_not_json_is_a_400(personas, admission_caller):
    response = admission_caller.request("POST", "/api/v1/admission/production", raw=b"{not json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


def test_an_environment_name_that_cannot_exist_is_a_404(personas, admission_caller):
    review = admission_review(workload("Pod", pod_spec("nginx")))
    assert ask(admission_caller, review, "Production")[0] == 404


def test_missing_and_bad_tokens_are_401(personas, admission_caller):
    review = admission_review(workload("Pod", pod_spec("nginx")))
    assert ask(Caller("none"), review)[0] == 401
    forged = Caller("forged", token=admission_caller.token[:-8] + "forgedXX")
    status, body = ask(forged, review)
    assert status == 401 and body["code"] == "token_invalid"


@pytest.mark.parametrize("scope", [s.value for s in Scope if s != Scope.ADMISSION_REVIEW])
def test_tokens_without_admission_review_are_refused(personas, scope):
    caller = Caller(scope, token=service_token(personas, scope)[1])
    status, body = ask(caller, admission_review(workload("Pod", pod_spec("nginx"))))
    assert status == 403 and body["code"] == "missing_scope"


def test_people_may_not_answer_admission_reviews(personas):
    for name in ("admin", "security", "requester"):
        caller = Caller(name, token=personal_token(getattr(personas, name)))
        status, _ = ask(caller, admission_review(workload("Pod", pod_spec("nginx"))))
        assert status == 403
        session = Caller(name, user=getattr(personas, name))
        status, _ = ask(session, admission_review(workload("Pod", pod_spec("nginx"))))
        assert status == 403


def test_token_of_another_project_learns_nothing(personas, other):
    app = promoted(personas)
    vetoed = promoted(personas, version="1.0.1")
    veto(personas, vetoed, scope="release")
    theirs = Caller(
        "other", token=service_token(personas, "admission:review", project=other.project)[1]
    )
    for release in (app, vetoed):
        answer = decided(theirs, admission_review(workload("Pod", pod_spec(image(release)))))
        assert answer["allowed"] is False
        assert answer["status"]["message"] == (
            f"releasegate denies (production): image {image(release)}: unknown digest "
            f"{release.artifact_digest} (no release of this project has it)"
        )


@pytest.mark.postgres
def test_a_pod_with_five_images_is_answered_in_one_statement(
    personas, admission_caller, django_assert_num_queries
):
    releases = [promoted(personas, version=f"1.0.{i}") for i in range(5)]
    # One digest also has a newer release in staging: the promoted one of production is found
    # in the same statement.
    cleared_release(
        personas,
        version="1.0.0-staging",
        environment="staging",
        artifact=releases[0].artifact_digest,
    )
    images = [image(r, f"registry.example.com/part{i}") for i, r in enumerate(releases)]
    review = admission_review(workload("Pod", pod_spec(*images, images[0])))
    decided(admission_caller, review)  # the token's last use is recorded once a minute
    # The token and, for every distinct digest, its release with every fact: one round trip.
    with django_assert_num_queries(1):
        assert decided(admission_caller, admission_review(workload("Pod", pod_spec(*images))))[
            "allowed"
        ]


def test_revoked_attestation_is_listed_after_the_veto(personas, admission_caller, person):
    app = promoted(personas)
    fetched = person("requester").request("GET", f"/api/v1/releases/{app.pk}/attestation")
    assert fetched.status_code == 200
    veto(personas, app)
    assert Revocation.objects.filter(attestation__release=app).count() == 1
