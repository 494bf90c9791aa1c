"""A local OIDC issuer for the exchange tests: discovery and JWKS over HTTP on 127.0.0.1 (a port
chosen at run time), keys made here, ID tokens signed as GitHub Actions signs them."""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class Key:
    def __init__(self, kind: str = "RSA", kid: str | None = None):
        self.kind = kind
        self.kid = kid or uuid.uuid4().hex[:16]
        if kind == "RSA":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.alg = "RS256"
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.alg = "ES256"

    def jwk(self) -> dict[str, Any]:
        algo = jwt.algorithms.RSAAlgorithm if self.kind == "RSA" else jwt.algorithms.ECAlgorithm
        entry = json.loads(algo.to_jwk(self.private.public_key()))
        entry.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return entry


class LocalIssuer:
    def __init__(self) -> None:
        self.keys = [Key("RSA"), Key("EC")]
        self.hang = False
        self.runner_token = uuid.uuid4().hex
        self.jwks_hits = 0
        self.discovery_hits = 0
        self._release = threading.Event()
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                if issuer.hang:
                    issuer._release.wait(10)  # longer than any timeout the tests set
                    return
                if self.path.startswith("/actions-token?"):
                    # GitHub Actions' ID token service: the runner's bearer, an audience.
                    from urllib.parse import parse_qs, urlsplit

                    if self.headers.get("Authorization") != f"Bearer {issuer.runner_token}":
                        self.send_response(401)
                        self.end_headers()
                        return
                    audience = parse_qs(urlsplit(self.path).query)["audience"][0]
                    body = {"value": issuer.token(aud=audience)}
                elif self.path == "/.well-known/openid-configuration":
                    issuer.discovery_hits += 1
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                elif self.path == "/jwks":
                    issuer.jwks_hits += 1
                    body = {"keys": [k.jwk() for k in issuer.keys]}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """A GitHub Actions ID token's claims for acme/app's release workflow on main."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": "releasegate",
            "sub": "repo:acme/app:ref:refs/heads/main",
            "repository": "acme/app",
            "repository_id": "111111",
            "repository_owner": "acme",
            "repository_owner_id": "900",
            "workflow": "release",
            "workflow_ref": "acme/app/.github/workflows/release.yml@refs/heads/main",
            "job_workflow_ref": "acme/app/.github/workflows/release.yml@refs/heads/main",
            "run_id": "4242",
            "run_attempt": "1",
            "ref": "refs/heads/main",
            "actor": "octocat",
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not Ellipsis}

    def sign(self, claims: dict[str, Any], key: Key | None = None, **header: Any) -> str:
        key = key or self.keys[0]
        headers = {"kid": key.kid, **header}
        return jwt.encode(claims, key.private, algorithm=key.alg, headers=headers)

    def token(self, key: Key | None = None, **overrides: Any) -> str:
        return self.sign(self.claims(**overrides), key)
