"""The OIDC issuers whose ID tokens the exchange accepts, and their signing keys.

Keys come from the issuer's discovery document and its `jwks_uri`, fetched with a timeout and
kept for `RELEASEGATE_OIDC_JWKS_CACHE_SECONDS`. A token signed with a key id the cache does not
know makes one fresh fetch (a rotation), but at most once a minute per issuer, so a flood of
tokens with made-up key ids cannot turn releasegate into a load generator against the issuer.
"""

import ipaddress
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from django.conf import settings

from releasegate.errors import ReleasegateError

REFRESH_FLOOR_SECONDS = 60.0
MAX_DOCUMENT_BYTES = 256 * 1024
ALLOWED_ALGORITHMS = ("RS256", "ES256")


class IssuerUnavailable(ReleasegateError):
    """The issuer's discovery document or keys could not be fetched in time; 503."""

    def __init__(self, message: str):
        super().__init__(message=message, code="oidc_issuer_unavailable", status=503)


class UnknownKey(Exception):
    """No key of the issuer has this key id, even after a refresh."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str) -> str | None:
    """Why `url` may not be an issuer (or a key URL), or None: HTTPS, or plain HTTP on a loopback
    address when the test or DEBUG setting allows it; no user info, query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "is not a URL"
    if parts.username or parts.password or parts.query or parts.fragment or not host:
        return "must be a plain https:// URL (no user, query or fragment)"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _is_loopback(host):
        if settings.RELEASEGATE_OIDC_ALLOW_LOOPBACK_HTTP:
            return None
        return "may use plain http only on loopback with DEBUG on"
    return "must use https"


def allowed_issuers() -> list[str]:
    """`RELEASEGATE_OIDC_ISSUERS`, less any entry that is not a usable issuer URL."""
    return [url for url in settings.RELEASEGATE_OIDC_ISSUERS if url_problem(url) is None]


@dataclass
class _IssuerKeys:
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at: float = 0.0


_cache: dict[str, _IssuerKeys] = {}
_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


def _lock_of(issuer: str) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(issuer, threading.Lock())


def _get_json(client: httpx.Client, url: str, what: str) -> dict[str, Any]:
    problem = url_problem(url)
    if problem is not None:
        raise IssuerUnavailable(f"The issuer's {what} URL {problem}.")
    try:
        response = client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError:
        raise IssuerUnavailable(f"The issuer's {what} could not be fetched in time.") from None
    if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
        raise IssuerUnavailable(f"The issuer's {what} answered {response.status_code}.")
    try:
        body = response.json()
    except ValueError:
        raise IssuerUnavailable(f"The issuer's {what} is not JSON.") from None
    if not isinstance(body, dict):
        raise IssuerUnavailable(f"The issuer's {what} is not a JSON object.")
    return body


def _fetch(issuer: str) -> dict[str, jwt.PyJWK]:
    timeout = float(settings.RELEASEGATE_OIDC_TIMEOUT_SECONDS)
    # The whole fetch (discovery, then keys) shares one deadline; redirects are not followed, so
    # an issuer cannot bounce the request to an address nobody allowed.
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        discovery = _get_json(
            client, f"{issuer.rstrip('/')}/.well-known/openid-configuration", "discovery document"
        )
        if discovery.get("issuer") != issuer:
            raise IssuerUnavailable("The issuer's discovery document names another issuer.")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise IssuerUnavailable("The issuer's discovery document has no jwks_uri.")
        document = _get_json(client, jwks_uri, "key set")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document.get("keys") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("kty") not in {"RSA", "EC"}:
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue  # one unusable key (an algorithm we do not take) does not spoil the rest
    return keys


def signing_key(issuer: str, kid: str) -> jwt.PyJWK:
    """The issuer's key `kid`, from the cache or a fetch (see the module docstring)."""
    now = time.monotonic()
    ttl = float(settings.RELEASEGATE_OIDC_JWKS_CACHE_SECONDS)
    # One lock per issuer: concurrent requests wait for one fetch rather than each making their
    # own, the timeout bounds the wait, and a slow issuer never holds up another's tokens.
    with _lock_of(issuer):
        entry = _cache.get(issuer)
        fresh = entry is not None and now - entry.fetched_at < ttl
        if entry is not None and fresh and kid in entry.keys:
            return entry.keys[kid]
        if entry is not None and fresh and now - entry.fetched_at < REFRESH_FLOOR_SECONDS:
            raise UnknownKey(kid)
        try:
            keys = _fetch(issuer)
        except IssuerUnavailable:
            if entry is not None and kid in entry.keys:
                return entry.keys[kid]  # an issuer that is down still has its old keys
            raise
        _cache[issuer] = _IssuerKeys(keys=keys, fetched_at=time.monotonic())
        if kid not in keys:
            raise UnknownKey(kid)
        return keys[kid]


def forget_keys() -> None:
    """Drop every cached key set (tests start each issuer afresh)."""
    with _locks_lock:
        _cache.clear()
