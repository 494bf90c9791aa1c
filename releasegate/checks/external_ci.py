"""The `external_ci` check: a pipeline's status pulled over HTTP from the CI system the project
configures (policy.external_ci = {"url", "format": "github" | "gitlab", "token_env"?}).

The only check that touches the network. A timeout, a connection failure, a 429 or a 5xx is
transient (the task retries it with backoff, then records `error`); anything else is decided here.
"""

import os
from collections.abc import Mapping
from typing import Any

import httpx
from django.conf import settings

from releasegate.checks.outcome import Outcome
from releasegate.env import url_origin

GITHUB_PASSING = {"success", "neutral", "skipped"}
GITLAB_WAITING = {
    "created",
    "waiting_for_resource",
    "preparing",
    "pending",
    "running",
    "scheduled",
    "manual",
}


CI_TOKEN_RULE = (
    "a CI token is sent only to the origin the operator binds it to in "
    "RELEASEGATE_EXTERNAL_CI_TOKENS"
)


def ci_token_refusal(config: Mapping[str, Any], url: str | None = None) -> str | None:
    """Why the worker may not send the token named by `config["token_env"]` to `url` (the
    policy's URL when not given), or None when it may or no token is named. The operator binds
    each variable a worker may send to one origin (`RELEASEGATE_EXTERNAL_CI_TOKENS`); a project
    admin only chooses among them, so no policy can ship another secret of the worker's
    environment (DATABASE_URL, the signing key) to a server of its choosing."""
    token_env = config.get("token_env")
    if token_env is None or token_env == "":
        return None
    if not isinstance(token_env, str):
        return f"token_env must be the name of an environment variable ({CI_TOKEN_RULE})"
    bound = settings.RELEASEGATE_EXTERNAL_CI_TOKENS.get(token_env)
    if bound is None:
        listed = ", ".join(sorted(settings.RELEASEGATE_EXTERNAL_CI_TOKENS)) or "none"
        return (
            f"{token_env[:100]} is not a CI token the operator lets workers send ({CI_TOKEN_RULE}; "
            f"listed: {listed})"
        )
    origin = url_origin(config.get("url") if url is None else url)
    if origin != bound:
        where = origin or "a URL without an http(s) origin"
        return f"{token_env} may be sent only to {bound}, not to {where} ({CI_TOKEN_RULE})"
    return None


class TransientCheckError(Exception):
    """Worth trying again later (the remote system did not answer, or answered 429/5xx)."""


def _github(body: Any) -> Outcome:
    runs = body.get("check_runs") if isinstance(body, dict) else None
    if not isinstance(runs, list):
        return Outcome("error", "the CI answer has no check_runs list", {"format": "github"})
    if not runs:
        return Outcome("pending", "no check run has been reported yet", {"format": "github"})
    listed = [
        {"name": r.get("name"), "status": r.get("status"), "conclusion": r.get("conclusion")}
        for r in runs
        if isinstance(r, dict)
    ]
    details = {"format": "github", "check_runs": listed[:200]}
    waiting = [r for r in listed if r["status"] != "completed"]
    if waiting:
        return Outcome(
            "pending", f"{len(waiting)} of {len(listed)} check runs still running", details
        )
    bad = [r for r in listed if r["conclusion"] not in GITHUB_PASSING]
    if bad:
        names = ", ".join(f"{r['name']} ({r['conclusion']})" for r in bad[:10])
        return Outcome("failed", f"{len(bad)} check runs did not pass: {names}"[:1000], details)
    return Outcome("passed", f"all {len(listed)} check runs passed", details)


def _gitlab(body: Any) -> Outcome:
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(status, str):
        return Outcome("error", "the CI answer has no pipeline status", {"format": "gitlab"})
    details = {"format": "gitlab", "status": status, "web_url": body.get("web_url")}
    if status == "success":
        return Outcome("passed", "the pipeline succeeded", details)
    if status in GITLAB_WAITING:
        return Outcome("pending", f"the pipeline is {status}", details)
    return Outcome("failed", f"the pipeline is {status}", details)


def check_external_ci(config: dict[str, Any], *, version: str, artifact_digest: str) -> Outcome:
    """Pull the pipeline status. The URL may name `{version}` and `{artifact_digest}`."""
    url = config.get("url")
    kind = config.get("format", "github")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return Outcome("error", "the policy's external_ci has no http(s) url", {"config": config})
    if kind not in {"github", "gitlab"}:
        return Outcome("error", f"unknown external_ci format {kind!r}", {"config": config})
    url = url.replace("{version}", version).replace("{artifact_digest}", artifact_digest)
    headers = {"Accept": "application/json", "User-Agent": "releasegate"}
    token_env = config.get("token_env")
    # Again here, on the URL about to be asked: a policy row written before the binding (or
    # under another one) must not take the token anywhere else.
    refused = ci_token_refusal(config, url)
    if refused is not None:
        return Outcome("error", f"the CI token is not sent: {refused}"[:1000], {"url": url})
    if token_env:
        token = os.environ.get(str(token_env))
        if not token:
            return Outcome(
                "error", f"the environment variable {token_env} is not set", {"url": url}
            )
        headers["Authorization"] = f"Bearer {token}"
    timeout = httpx.Timeout(settings.RELEASEGATE_EXTERNAL_CI_TIMEOUT_SECONDS)
    try:
        # Never redirected: the token goes to the bound origin and nowhere it points to.
        with httpx.Client(
            timeout=timeout, transport=httpx.HTTPTransport(retries=1), follow_redirects=False
        ) as client:
            response = client.get(url, headers=headers)
    except httpx.TimeoutException as exc:
        raise TransientCheckError(f"{url} did not answer in time") from exc
    except httpx.TransportError as exc:
        raise TransientCheckError(f"{url} could not be reached: {exc}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientCheckError(f"{url} answered {response.status_code}")
    if response.status_code != 200:
        return Outcome(
            "error",
            f"{url} answered {response.status_code}",
            {"url": url, "status_code": response.status_code},
        )
    try:
        body = response.json()
    except ValueError:
        return Outcome("error", f"{url} did not answer JSON", {"url": url})
    outcome = _github(body) if kind == "github" else _gitlab(body)
    return Outcome(outcome.status, outcome.summary, {**outcome.details, "url": url})
