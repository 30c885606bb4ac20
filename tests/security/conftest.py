"""The security tests' system: all services on their own NATS and MongoDB, the `acct` provider (needs
accounts) on a per-token fake, OIDC trust in a local identity provider, and two users with their keys."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from accounts.kit import AccountsFake, System, running
from conftest import Servers, own_servers
from cryptography.hazmat.primitives.asymmetric import rsa
from support import api_client

ISSUER = "https://idp.pixsim.test/"
AUDIENCE = "pixsim-api"


class IdentityProvider:
    """A local OIDC identity provider: serves its JWKS over HTTP and signs tokens with its current key."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.kid = ""
        self.rotate()
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(idp.jwks()).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def rotate(self) -> str:
        """A new signing key under a new `kid`; the JWKS publishes only the current key."""
        self.kid = uuid.uuid4().hex[:12]
        self.keys = {self.kid: rsa.generate_private_key(public_exponent=65537, key_size=2048)}
        return self.kid

    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                {
                    **jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True),
                    "kid": kid,
                    "alg": "RS256",
                    "use": "sig",
                }
                for kid, key in self.keys.items()
            ]
        }

    def token(
        self,
        sub: str = "oidc-user",
        *,
        role: str | list[str] | None = None,
        key: Any = None,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
            **({"role": role} if role else {}),
            **claims,
        }
        return jwt.encode(
            {k: v for k, v in payload.items() if v is not None},
            key or self.keys[self.kid],
            algorithm="RS256",
            headers={"kid": kid or self.kid},
        )

    def stop(self) -> None:
        self.server.shutdown()


@dataclass
class Secure:
    system: System
    url: str
    servers: Servers
    idp: IdentityProvider
    fake: AccountsFake
    keys: dict[str, str]  # user -> token

    def client(self, user: str):
        return api_client(self.url, token=self.keys[user])


@pytest.fixture(scope="package")
def secure_servers() -> Iterator[Servers]:
    with own_servers() as found:
        yield found


@pytest.fixture(scope="package")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    yield provider
    provider.stop()


@pytest.fixture(scope="package")
def security_fake() -> Iterator[AccountsFake]:
    fake = AccountsFake(latency=0.3)
    fake.start("127.0.0.1", 0)
    yield fake
    fake.stop()


@pytest.fixture(scope="package")
async def secure(
    secure_servers: Servers, idp: IdentityProvider, security_fake: AccountsFake, sim_fake: Any
) -> AsyncIterator[Secure]:
    oidc = {
        "PIXSIM_OIDC_ISSUER": ISSUER,
        "PIXSIM_OIDC_AUDIENCE": AUDIENCE,
        "PIXSIM_OIDC_JWKS_URL": idp.url,
        "PIXSIM_OIDC_JWKS_REFRESH": 0.2,
        "PIXSIM_SSE_MAX_PER_USER": 2,
    }
    async with running(secure_servers, security_fake, db="security", **oidc) as system:
        keys = {}
        for user in ("alice", "bob"):
            resp = await system.api.post("/api/v1/keys", json={"name": f"{user}'s laptop", "owner": user})
            assert resp.status_code == 201, resp.text
            keys[user] = resp.json()["token"]
        yield Secure(system, str(system.api.base_url).rstrip("/"), secure_servers, idp, security_fake, keys)
