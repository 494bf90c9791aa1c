"""Promoted releases, admission tokens and real AdmissionReview documents (as a kube-apiserver
sends them: admission.k8s.io/v1, with the full object of the kind under review)."""

import base64
import json
import uuid
from typing import Any

import pytest

from releasegate.releases.models import Release
from releasegate.releases.services import release_promote, veto_cast
from releasegate.signing import keys
from tests.api.conftest import (
    Caller,
    person,  # noqa: F401  (a fixture, shared)
    service_token,
)
from tests.conftest import Personas, make_personas
from tests.notifications.test_notifications import (  # noqa: F401  (fixtures, shared)
    eager_tasks,
    receiver,
)
from tests.releases.gatehelpers import cleared_release

REGISTRY = "registry.example.com/support/assistant"


def promoted(p: Personas, **kwargs: Any) -> Release:
    release = cleared_release(p, **kwargs)
    promoted_release, decision = release_promote(release=release, actor=p.actor("requester"))
    assert decision.cleared
    return promoted_release


def veto(p: Personas, release: Release, *, scope: str = "carry_forward") -> Any:
    return veto_cast(
        release=release,
        actor=p.actor("security"),
        role="security",
        reason="prompt injection reaches the CRM tool",
        scope=scope,
    )


def image(release: Release, name: str = REGISTRY) -> str:
    return f"{name}@{release.artifact_digest}"


def statement_of(envelope: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(envelope["payload"]))


def public_pem() -> str:
    return keys.active_key().public_pem


@pytest.fixture
def other(db: Any) -> Personas:
    return make_personas("other-assistant", prefix="other-")


@pytest.fixture
def admission_caller(personas: Personas) -> Caller:
    return Caller("admission", token=service_token(personas, "admission:review")[1])


def _meta(name: str, namespace: str = "support") -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": {"app": "support-assistant"}}


def container(name: str, image_ref: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image_ref,
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}},
        "imagePullPolicy": "IfNotPresent",
    }


def pod_spec(*images: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [container(f"c{i}", ref) for i, ref in enumerate(images)],
        "restartPolicy": "Always",
        "serviceAccountName": "support-assistant",
    }
    if init:
        spec["initContainers"] = [container(f"init{i}", ref) for i, ref in enumerate(init)]
    return spec


def _template(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "support-assistant"}}, "spec": spec}


_GROUPS = {
    "Pod": ("", "v1", "pods"),
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "ConfigMap": ("", "v1", "configmaps"),
}


def workload(kind: str, spec: dict[str, Any], name: str = "assistant") -> dict[str, Any]:
    group, version = _GROUPS[kind][:2]
    api_version = f"{group}/{version}" if group else version
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": _meta(name)}
    if kind == "Pod":
        obj["spec"] = spec
    elif kind == "CronJob":
        obj["spec"] = {
            "schedule": "*/30 * * * *",
            "jobTemplate": {"spec": {"template": _template({**spec, "restartPolicy": "Never"})}},
        }
    elif kind == "Job":
        obj["spec"] = {"backoffLimit": 2, "template": _template({**spec, "restartPolicy": "Never"})}
    else:
        obj["spec"] = {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "support-assistant"}},
            "template": _template(spec),
        }
    return obj


def admission_review(
    obj: dict[str, Any],
    *,
    operation: str = "CREATE",
    sub_resource: str | None = None,
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    kind = obj["kind"]
    group, version, resource = _GROUPS[kind]
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": obj["metadata"]["name"],
        "namespace": obj["metadata"]["namespace"],
        "operation": operation,
        "userInfo": {
            "username": "system:serviceaccount:ci:deployer",
            "uid": "0b4f2c55-0d7e-4ad9-9a4b-3c1f5e0c1a11",
            "groups": ["system:serviceaccounts", "system:authenticated"],
        },
        "object": obj if operation != "DELETE" else None,
        "oldObject": old,
        "dryRun": False,
        "options": {
            "apiVersion": "meta.k8s.io/v1",
            "kind": "UpdateOptions" if operation == "UPDATE" else "CreateOptions",
        },
    }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def ask(caller: Caller, review: Any, environment: str = "production") -> tuple[int, Any]:
    response = caller.request("POST", f"/api/v1/admission/{environment}", review)
    return response.status_code, response.json()


def decided(caller: Caller, review: dict[str, Any], environment: str = "production") -> Any:
    """The `response` of a review the webhook answered (200, uid echoed)."""
    status, body = ask(caller, review, environment)
    assert status == 200, body
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    answer = body["response"]
    assert answer["uid"] == review["request"]["uid"]
    if answer["allowed"]:
        assert "status" not in answer
    else:
        assert answer["status"]["code"] == 403
    return answer
