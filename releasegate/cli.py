"""`releasegate`: ask the gate from CI, wait for clearance, promote, report check results,
fetch a signed attestation and verify one offline.

Exit codes: 0 cleared (or done, or valid), 1 blocked (or invalid, expired, revoked), 2 usage,
authentication or not found, 3 server unreachable. The token comes from RELEASEGATE_TOKEN, or with
`--oidc` from exchanging the CI system's OIDC ID token, exchanged again when a long `--wait`
outlives it (see `OidcToken`); no token is ever printed; `verify` needs no token and no network.
"""

import argparse
import base64
import email.utils
import json
import os
import random
import re
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from releasegate.attestations.statement import (
    DIGEST_RE,
    Refused,
    check_not_revoked,
    load_public_key,
    verify_attestation,
)

CLEARED, BLOCKED, USAGE, UNREACHABLE = 0, 1, 2, 3
REQUEST_TIMEOUT = 15.0
FIRST_DELAY = float(os.environ.get("RELEASEGATE_POLL_FIRST_SECONDS", "2"))
MAX_DELAY = 60.0

_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """`30m`, `1h30m`, `2d`, `45s` or plain seconds."""
    value = text.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    match = _DURATION_RE.match(value)
    if not value or match is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 30m, 1h30m, 2d, 45s)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


class Unreachable(Exception):
    pass


class Failed(Exception):
    """The server refused the request (auth, not found, bad input): exit 2."""


def _duration_arg(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="releasegate",
        description="Ask releasegate whether a release is cleared. Token: RELEASEGATE_TOKEN.",
    )
    _oidc_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--url",
            default=os.environ.get("RELEASEGATE_URL"),
            required="RELEASEGATE_URL" not in os.environ,
            help="releasegate's base URL, e.g. https://releasegate.example.com",
        )

    gate = commands.add_parser("gate", help="exit 0 if the release is cleared, 1 if blocked")
    common(gate)
    gate.add_argument("--project")
    gate.add_argument("--version")
    gate.add_argument("--digest", help="sha256:<hex> of the artifact")
    gate.add_argument(
        "--environment",
        default=os.environ.get("RELEASEGATE_ENVIRONMENT"),
        required="RELEASEGATE_ENVIRONMENT" not in os.environ,
        help="where the pipeline deploys: a release of another environment is blocked",
    )
    gate.add_argument("--wait", type=_duration_arg, help="poll until cleared, at most this long")
    gate.add_argument("--json", action="store_true", help="print the gate decision as JSON")

    promote = commands.add_parser("promote", help="promote the release if it is cleared")
    common(promote)
    promote.add_argument("--release", type=int, required=True)

    report = commands.add_parser("report-check", help="report a check result for a release")
    common(report)
    report.add_argument("--release", type=int, required=True)
    report.add_argument("--check", required=True)
    report.add_argument("--status", required=True)
    report.add_argument("--external-id", required=True)
    report.add_argument("--summary", default="")
    report.add_argument("--details-url", default="")
    _add_attestation_commands(commands, common)
    return parser


def _add_attestation_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    attest = commands.add_parser(
        "attest", help="fetch a signed attestation that a cleared release is cleared"
    )
    common(attest)
    attest.add_argument("--project")
    attest.add_argument("--version")
    attest.add_argument("--release", type=int)
    attest.add_argument("-o", "--output", required=True, help="file to write the envelope to")

    verify = commands.add_parser(
        "verify", help="verify an attestation offline: exit 0 valid, 1 invalid, expired, revoked"
    )
    verify.add_argument("--key", required=True, help="releasegate's public key (PEM file)")
    verify.add_argument("--digest", required=True, help="sha256:<hex> of the artifact to deploy")
    verify.add_argument("--environment", required=True, help="where it is to be deployed")
    verify.add_argument(
        "--max-age", type=_duration_arg, default=timedelta(hours=24), help="default 24h"
    )
    verify.add_argument("--revocations", help="a revocation list fetched from releasegate")
    verify.add_argument("file", help="the attestation (a DSSE envelope, JSON)")


class Api:
    """releasegate's API with a bearer token: a fixed one (RELEASEGATE_TOKEN), or one minted by
    the OIDC exchange and renewed before it expires (`OidcToken`)."""

    def __init__(self, url: str, token: "str | OidcToken"):
        self.token = token
        self.client = httpx.Client(
            base_url=url.rstrip("/") + "/api/v1",
            headers={"User-Agent": "releasegate-cli"},
            timeout=REQUEST_TIMEOUT,
        )

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        bearer = self.token if isinstance(self.token, str) else self.token.current()
        try:
            return self.client.request(
                method, path, headers={"Authorization": f"Bearer {bearer}"}, **kwargs
            )
        except httpx.HTTPError as error:
            raise Unreachable(f"cannot reach releasegate: {error.__class__.__name__}") from None

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        response = self._send(method, path, **kwargs)
        if (
            response.status_code == 401
            and isinstance(self.token, OidcToken)
            and _in_github_actions()
        ):
            # The minted token ran out sooner than its expiry said (a clock, a revocation):
            # a fresh ID token can be had, so exchange again once rather than fail the wait.
            self.token.renew()
            response = self._send(method, path, **kwargs)
        if response.status_code >= 500:
            raise Unreachable(f"releasegate answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise Unreachable(f"releasegate answered {response.status_code} without JSON") from None
        if not isinstance(body, dict):
            raise Unreachable("releasegate answered with an unexpected body")
        return response.status_code, body


def _refusal(status: int, body: dict[str, Any]) -> Failed:
    lines = [f"error {status} {body.get('code', '')}: {body.get('message', '')}"]
    lines += [f"  {e.get('field')}: {e.get('message')}" for e in body.get("errors") or []]
    return Failed("\n".join(lines))


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
MAX_FINDINGS = 20


def _line(text: Any) -> str:
    """One log line: a newline or a terminal escape in a reason or an evidence document's
    title cannot forge further lines in the pipeline's log."""
    return _CONTROL_RE.sub(" ", str(text))


def _print_blockers(blockers: Sequence[dict[str, Any]]) -> None:
    for blocker in blockers:
        print(_line(f"{blocker.get('code')}: {blocker.get('message', '')}"))


def _print_findings(api: Api, decision: dict[str, Any]) -> None:
    """The findings that fail the release's failing checks, one a line (`check: text`), at most
    MAX_FINDINGS and then how many more; from the release's own record, as its page lists them."""
    failing = {
        b.get("check") for b in decision.get("blockers") or [] if b.get("code") == "check_failed"
    }
    release_id = (decision.get("release") or {}).get("id")
    if not failing or not isinstance(release_id, int):
        return
    try:
        status, body = api.call("GET", f"/releases/{release_id}")
    except Unreachable as error:
        print(f"the findings could not be read: {error}", file=sys.stderr)
        return
    if status != 200:
        print(f"the findings could not be read: {status} {body.get('code', '')}", file=sys.stderr)
        return
    lines: list[str] = []
    unlisted = 0
    seen: set[str] = set()
    # Newest first per check: the result the gate reads.
    for result in body.get("checks") or []:
        check = result.get("check")
        if check not in failing or check in seen or not result.get("current"):
            continue
        seen.add(check)
        lines += [
            f"{check}: {f.get('text')}" for f in result.get("findings") or [] if f.get("counts")
        ]
        unlisted += int(result.get("unlisted_counting") or 0)
    for line in lines[:MAX_FINDINGS]:
        print(_line(line))
    more = max(0, len(lines) - MAX_FINDINGS) + unlisted
    if more > 0:
        print(f"... and {more} more")


def _gate(api: Api, args: argparse.Namespace) -> int:
    params = {"digest": args.digest} if args.digest else {"version": args.version}
    params["environment"] = args.environment
    if args.project:
        params["project"] = args.project

    def ask() -> dict[str, Any]:
        status, body = api.call("GET", "/gate", params=params)
        if status != 200:
            raise _refusal(status, body)
        return body

    decision = _poll(ask, args.wait) if args.wait else ask()
    release = decision.get("release", {})
    named = f"{release.get('project')} {release.get('version')} (release {release.get('id')})"
    if args.json:
        print(json.dumps(decision, indent=2))
    elif decision.get("cleared"):
        print(f"cleared: {named}")
    else:
        print(_line(f"blocked: {named}"))
        _print_blockers(decision.get("blockers") or [])
        _print_findings(api, decision)
    return CLEARED if decision.get("cleared") else BLOCKED


def _poll(ask: Callable[[], dict[str, Any]], wait: timedelta) -> dict[str, Any]:
    """Ask until cleared or `wait` runs out, with capped exponential backoff and full jitter
    (so many pipelines waiting on one release do not poll in step). Unreachable answers are
    retried too; the last one is raised if time runs out."""
    deadline = time.monotonic() + wait.total_seconds()
    delay = FIRST_DELAY
    last: dict[str, Any] | None = None
    while True:
        problem: Unreachable | None = None
        try:
            last = ask()
            if last.get("cleared"):
                return last
        except Unreachable as error:
            problem = error
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if last is None and problem is not None:
                raise problem
            assert last is not None
            return last
        pause = min(remaining, random.uniform(delay / 2, delay))  # noqa: S311 (jitter, not secrets)
        print(f"waiting {pause:.0f}s for clearance...", file=sys.stderr)
        time.sleep(pause)
        delay = min(delay * 2, MAX_DELAY)


def _promote(api: Api, args: argparse.Namespace) -> int:
    status, body = api.call("POST", f"/releases/{args.release}/promote")
    if status == 200:
        release = body["release"]
        print(f"promoted: {release['project']} {release['version']} (release {release['id']})")
        return CLEARED
    if status == 409:
        print(f"not promoted: {body.get('message', '')}")
        _print_blockers(body.get("blockers") or [])
        return BLOCKED
    raise _refusal(status, body)


def _report(api: Api, args: argparse.Namespace) -> int:
    status, body = api.call(
        "POST",
        f"/releases/{args.release}/checks",
        json={
            "check": args.check,
            "status": args.status,
            "external_id": args.external_id,
            "summary": args.summary,
            "details_url": args.details_url,
        },
    )
    if status in (200, 201):
        print(f"recorded: {body['check']} {body['status']} on release {args.release}")
        return CLEARED
    raise _refusal(status, body)


def _oidc_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--oidc",
        action="store_true",
        help="get a short-lived token by exchanging this CI job's OIDC ID token (GitHub Actions, "
        "or RELEASEGATE_ID_TOKEN from GitLab id_tokens) instead of RELEASEGATE_TOKEN",
    )
    parser.add_argument(
        "--audience",
        default=os.environ.get("RELEASEGATE_OIDC_AUDIENCE", "releasegate"),
        help="the audience the ID token is asked for (the trust policy's; default releasegate)",
    )


def _id_token(audience: str) -> str:
    """The job's ID token: asked from GitHub Actions' token service when the job may ask
    (`permissions: id-token: write`), else RELEASEGATE_ID_TOKEN (GitLab CI's `id_tokens:`)."""
    request_url = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL", "")
    request_token = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
    if request_url and request_token:
        separator = "&" if urllib.parse.urlsplit(request_url).query else "?"
        url = f"{request_url}{separator}audience={urllib.parse.quote(audience, safe='')}"
        try:
            response = httpx.get(
                url,
                headers={"Authorization": f"Bearer {request_token}"},
                timeout=REQUEST_TIMEOUT,
            )
        except httpx.HTTPError as error:
            name = error.__class__.__name__
            raise Unreachable(f"cannot reach the CI's ID token service: {name}") from None
        if response.status_code != 200:
            raise Failed(f"the CI's ID token service answered {response.status_code}")
        try:
            value = response.json().get("value")
        except (ValueError, AttributeError):
            value = None
        if not isinstance(value, str) or not value:
            raise Failed("the CI's ID token service sent no token")
        return value
    value = os.environ.get("RELEASEGATE_ID_TOKEN", "").strip()
    if not value:
        raise Failed(
            "--oidc needs an ID token: in GitHub Actions grant `permissions: id-token: write`; "
            "in GitLab CI set RELEASEGATE_ID_TOKEN from `id_tokens:`"
        )
    return value


def _in_github_actions() -> bool:
    return bool(
        os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
        and os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    )


def _id_token_expiry(raw: str) -> datetime | None:
    """The `exp` of an ID token, read without verifying it (only to say why a wait failed:
    releasegate verifies the token itself)."""
    try:
        payload = raw.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(int(claims["exp"]), tz=UTC)
    except (IndexError, ValueError, KeyError, TypeError, OverflowError):
        return None


def _seconds_left(answer: dict[str, Any], response: httpx.Response) -> float:
    """How long the minted token lives, by releasegate's clock (its Date header) rather than
    this runner's, which may be off."""
    try:
        expires = datetime.fromisoformat(str(answer.get("expires_at")).replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    try:
        now = email.utils.parsedate_to_datetime(response.headers.get("date", ""))
    except (TypeError, ValueError):
        now = datetime.now(UTC)
    return max(0.0, (expires - now).total_seconds())


class OidcToken:
    """The service token got by exchanging this CI job's OIDC ID token, exchanged again before
    it expires (minted tokens live at most 15 minutes; a `--wait` may be longer).

    In GitHub Actions each exchange asks the runner for a new ID token. RELEASEGATE_ID_TOKEN
    (GitLab's `id_tokens:`) is one token, exchanged once (releasegate refuses a `jti` it has
    seen): a wait longer than the minted token fails with a message saying which ran out."""

    def __init__(self, url: str, audience: str, project: str | None):
        self.url, self.audience, self.project = url, audience, project
        self._token: str | None = None
        self._renew_at = 0.0  # time.monotonic()
        self._until = ""
        self._static_id_token: str | None = None

    def current(self) -> str:
        if self._token is None or time.monotonic() >= self._renew_at:
            self.renew()
        assert self._token is not None
        return self._token

    def renew(self) -> None:
        if self._token is not None and not _in_github_actions():
            raise Failed(self._outlived())
        first = self._token is None
        id_token = _id_token(self.audience)
        if not _in_github_actions():
            self._static_id_token = id_token
        self._token, seconds = self._exchange(id_token, first=first)
        # Renew a minute before the end, or a quarter of the lifetime for a short one. A token
        # that cannot be renewed is used almost to its end: a few seconds short of it, so that no
        # request leaves with a token that expires on its way (a 401 instead of saying why).
        margin = min(60.0, seconds / 4) if _in_github_actions() else min(5.0, seconds / 4)
        self._renew_at = time.monotonic() + seconds - margin

    def _outlived(self) -> str:
        expiry = _id_token_expiry(self._static_id_token or "")
        if expiry is not None and expiry <= datetime.now(UTC):
            return (
                f"the wait outlived the ID token: RELEASEGATE_ID_TOKEN expired at "
                f"{expiry.isoformat()}, and the token it was exchanged for ended {self._until}; "
                "a job's id_tokens cannot be renewed from inside it: keep --wait within the "
                "trust policy's token lifetime"
            )
        return (
            f"the wait outlived the minted token (it ends {self._until}): RELEASEGATE_ID_TOKEN "
            "was exchanged once and releasegate exchanges an ID token only once; keep --wait "
            "within the trust policy's lifetime"
        )

    def _exchange(self, id_token: str, *, first: bool) -> tuple[str, float]:
        """Exchange at releasegate for a service token of a few minutes: it and its life left."""
        body: dict[str, Any] = {"token": id_token}
        if self.project:
            body["project"] = self.project
        try:
            response = httpx.post(
                self.url.rstrip("/") + "/api/v1/oidc/exchange",
                json=body,
                headers={"User-Agent": "releasegate-cli"},
                timeout=REQUEST_TIMEOUT,
            )
        except httpx.HTTPError as error:
            raise Unreachable(f"cannot reach releasegate: {error.__class__.__name__}") from None
        if response.status_code >= 500:
            raise Unreachable(f"releasegate answered {response.status_code} to the OIDC exchange")
        try:
            answer = response.json()
        except ValueError:
            raise Unreachable(f"releasegate answered {response.status_code} without JSON") from None
        if response.status_code != 201 or not isinstance(answer.get("token"), str):
            raise _refusal(response.status_code, answer if isinstance(answer, dict) else {})
        self._until = str(answer.get("expires_at"))
        what = "exchanged the CI's ID token" if first else "renewed: exchanged a new CI ID token"
        scopes = ", ".join(answer.get("scopes") or [])
        print(
            f"{what} for a token of {answer.get('project')} ({scopes}) until {self._until}",
            file=sys.stderr,
        )
        token: str = answer["token"]
        return token, _seconds_left(answer, response)


def _attest(api: Api, args: argparse.Namespace) -> int:
    release_id = args.release
    if release_id is None:
        status, body = api.call(
            "GET", "/gate", params={"project": args.project, "version": args.version}
        )
        if status != 200:
            raise _refusal(status, body)
        release_id = body["release"]["id"]
    status, body = api.call("GET", f"/releases/{release_id}/attestation")
    if status == 409:
        print(f"not cleared: {body.get('message', '')}")
        _print_blockers(body.get("blockers") or [])
        return BLOCKED
    if status != 200:
        raise _refusal(status, body)
    Path(args.output).write_text(json.dumps(body, indent=2) + "\n")
    print(f"attestation of release {release_id} written to {args.output}")
    return CLEARED


def _read_json(path: str, what: str) -> Any:
    """The JSON document in `path`; OSError for an unreadable file (usage), Refused for one
    that is not JSON (what was handed over is not an attestation)."""
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except ValueError:
        raise Refused(f"{what} {path} is not JSON") from None


def _verify(args: argparse.Namespace) -> int:
    """Offline: no token, no network. 0 valid, 1 refused, 2 usage."""
    if DIGEST_RE.match(args.digest) is None:
        print("--digest must be sha256:<64 lower-case hex>", file=sys.stderr)
        return USAGE
    try:
        public = load_public_key(Path(args.key).read_bytes())
    except (OSError, ValueError) as error:
        print(f"--key: {error}", file=sys.stderr)
        return USAGE

    def key_for(keyid: str) -> ec.EllipticCurvePublicKey:
        return public  # one trusted key: whatever key id the envelope names

    now = datetime.now(UTC)
    try:
        envelope = _read_json(args.file, "the attestation")
        verified = verify_attestation(
            envelope,
            key_for=key_for,
            digest=args.digest,
            environment=args.environment,
            max_age=args.max_age,
            now=now,
        )
        if args.revocations:
            check_not_revoked(
                verified,
                _read_json(args.revocations, "the revocation list"),
                key_for=key_for,
                digest=args.digest,
                max_age=args.max_age,
                now=now,
            )
    except OSError as error:
        print(f"cannot read {error.filename}: {error.strerror}", file=sys.stderr)
        return USAGE
    except Refused as refused:
        print(f"invalid: {refused}")
        return BLOCKED
    print(
        f"valid: {verified.subject} ({args.digest}) cleared for {verified.environment} at "
        f"{verified.time_verified.isoformat()} (attestation {verified.attestation_id})"
    )
    return CLEARED


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line read and checked, without any network: a usage error exits 2."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "verify":
        return args
    if args.command == "attest" and (args.release is None) == (
        args.project is None or args.version is None
    ):
        parser.error("attest needs --release, or --project and --version (not both)")
    if args.command == "gate" and not (args.digest or (args.project and args.version)):
        parser.error("gate needs --project and --version, or --digest")
    if args.command == "gate" and args.digest and args.version:
        parser.error("gate takes --version or --digest, not both")
    if not re.match(r"^https?://", args.url or ""):
        parser.error("--url must be an http(s) URL")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "verify":
        return _verify(args)
    token: str | OidcToken
    if args.oidc:
        token = OidcToken(args.url, args.audience, getattr(args, "project", None))
        try:
            token.current()
        except Failed as error:
            print(str(error), file=sys.stderr)
            return USAGE
        except Unreachable as error:
            print(str(error), file=sys.stderr)
            return UNREACHABLE
    else:
        token = os.environ.get("RELEASEGATE_TOKEN", "").strip()
        if not token:
            print("RELEASEGATE_TOKEN is not set.", file=sys.stderr)
            return USAGE
    api = Api(args.url, token)
    run = {"gate": _gate, "promote": _promote, "report-check": _report, "attest": _attest}[
        args.command
    ]
    try:
        return run(api, args)
    except Failed as error:
        print(str(error), file=sys.stderr)
        return USAGE
    except Unreachable as error:
        print(str(error), file=sys.stderr)
        return UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
