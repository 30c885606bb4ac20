"""What the account tests share: a provider that needs accounts, a fake that behaves per account, and the
system served in-process on a test's own NATS and MongoDB.

The provider is the Simulator's adapter under another manifest (`acct`: credentials required, credit
types `sim` and `premium`) plus `get_credits`; the fake is the Simulator's fake plus per-token knobs.
Only the outside world is faked: every service is the real one.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
from conftest import PROVIDERS, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_contracts import ProviderKind, ProviderManifest
from pixsim_provider_sdk import LoadedProvider, ProviderAccount, Registry, discover
from pixsim_provider_sdk.testing.fake_http import (
    FakeRequest,
    FakeResponse,
    json_error,
    json_response,
    load_fake,
    route,
)
from pixsim_runtime.inprocess import serve
from support import api_client, mongo_db

PROVIDER = "acct"
MANIFEST = ProviderManifest(
    id=PROVIDER,
    name="Accounts test provider",
    version="1.0.0",
    kind=ProviderKind.BOTH,
    requires_credentials=True,
    credit_types=["sim", "premium"],
)
_sim_fake_module = sys.modules[load_fake(PROVIDERS / "sim").__module__]
SimFakeApi = _sim_fake_module.SimFakeApi
_sim = discover(PROVIDERS, include_entry_points=False, only=["sim"])
_SimProvider, _SIM_MANIFEST = type(_sim.get("sim")), _sim.manifest("sim")


class AcctProvider(_SimProvider):  # type: ignore[misc, valid-type]
    """The Simulator's adapter, plus the optional `get_credits` the sync endpoint looks for."""

    async def get_credits(self, account: ProviderAccount) -> dict[str, int] | None:
        body = await self._call("GET", "/v1/account/credits", account)
        return {k: int(v) for k, v in body["credits"].items()}


class AccountsFake(SimFakeApi):  # type: ignore[misc, valid-type]
    """The Simulator's fake with per-token behaviour. Handlers run one at a time (the server's lock)."""

    def __init__(self, **knobs: Any) -> None:
        super().__init__(**knobs)
        self.accept_then_401: dict[str, int] = {}  # token -> submits accepted before every submit answers 401
        self.quota_left: dict[str, int] = {}  # token -> credits the provider still lets it spend
        self.rate_limited: dict[str, int] = {}  # token -> how many next submits answer 429
        self.retry_after_s = 1
        self.max_running: dict[str, int] = {}  # token -> the most jobs it ever had running at once
        self.balances: dict[str, dict[str, int]] = {}  # token -> what GET /v1/account/credits reports
        self.submits: list[tuple[float, str, int, str]] = []  # (monotonic time, token, HTTP status, prompt)
        self.job_token: dict[str, str] = {}
        self.accepted: dict[str, int] = {}

    def running(self, token: str, now: float) -> int:
        return sum(
            1
            for job_id, t in self.job_token.items()
            if t == token and self.jobs[job_id].state(now)[0] not in _sim_fake_module.TERMINAL
        )

    @route("POST", r"/v1/jobs")
    def submit(self, req: FakeRequest) -> FakeResponse:
        token, now = req.bearer_token or "", time.monotonic()
        response = self._per_token(req, token)
        if response is None:
            response = SimFakeApi.submit(self, req)
        if response.status == 201:
            job_id = json.loads(response.body)["id"]
            self.job_token[job_id] = token
            self.accepted[token] = self.accepted.get(token, 0) + 1
            self.max_running[token] = max(self.max_running.get(token, 0), self.running(token, now))
        self.submits.append((now, token, response.status, str((req.json or {}).get("prompt"))))
        return response

    def accepted_prompts(self) -> list[str]:
        return [prompt for _, _, status, prompt in self.submits if status == 201]

    def _per_token(self, req: FakeRequest, token: str) -> FakeResponse | None:
        if token in self.accept_then_401 and self.accepted.get(token, 0) >= self.accept_then_401[token]:
            # Like some real APIs, it echoes the credential back: the adapter must scrub it.
            return json_error(401, "unauthorized", f"session {token} expired, log in again")
        if self.rate_limited.get(token):
            self.rate_limited[token] -= 1
            return json_error(
                429, "rate_limited", "slow down", headers={"Retry-After": str(self.retry_after_s)}
            )
        if token in self.quota_left:
            cost = int((req.json or {}).get("duration") or 1)
            if cost > self.quota_left[token]:
                return json_error(
                    402, "insufficient_credits", f"needs {cost}, {self.quota_left[token]} left", needed=cost
                )
            self.quota_left[token] -= cost
        return None

    @route("GET", r"/v1/account/credits")
    def account_credits(self, req: FakeRequest) -> FakeResponse:
        if denied := self._denied(req):
            return denied
        return json_response({"credits": self.balances.get(req.bearer_token or "", {})})


def registry(fake_url: str) -> Registry:
    """Fresh provider instances: `providers/sim`'s module-level instance is shared by every registry in
    this process, and services instrument a provider once, for the first tracer provider they see."""
    provider = AcctProvider(config={"base_url": fake_url})
    provider.attach_manifest(MANIFEST)
    sim = _SimProvider()
    sim.attach_manifest(_SIM_MANIFEST)
    return Registry(
        [
            LoadedProvider(MANIFEST, provider, "tests/accounts"),
            LoadedProvider(_SIM_MANIFEST, sim, "tests/accounts (sim)"),
        ]
    )


FAST = {
    "PIXSIM_ACCOUNT_WAIT": 0.05,
    "PIXSIM_ACCOUNT_WAIT_MAX": 0.2,
    "PIXSIM_POLL_MIN_INTERVAL": 0.05,
    "PIXSIM_POLL_MAX_INTERVAL": 0.2,
    "PIXSIM_COOLDOWN_BASE": 0.2,
}


@dataclass
class System:
    api: httpx.AsyncClient
    db: Any
    nats_url: str
    settings: dict[str, Any] = field(default_factory=dict)

    async def account(self, token: str, **body: Any) -> dict[str, Any]:
        resp = await self.api.post(
            "/api/v1/accounts", json={"provider_id": PROVIDER, "raw_data": {"token": token}, **body}
        )
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def generate(self, **params: Any) -> str:
        pin = params.pop("account_id", None)
        resp = await self.api.post(
            "/api/v1/generations",
            json={
                "provider_id": params.pop("provider_id", PROVIDER),
                "operation_type": "text_to_video",
                "params": {"prompt": "a fox", "duration": 1, **params},
                "account_id": pin,
            },
        )
        assert resp.status_code == 202, resp.text
        return resp.json()["id"]

    async def get(self, account_id: str) -> dict[str, Any]:
        return (await self.api.get(f"/api/v1/accounts/{account_id}")).json()

    async def wait_account(self, account_id: str, check, timeout: float = 15) -> dict[str, Any]:
        """Until `check(view)` holds for the account's API view."""
        deadline = time.monotonic() + timeout
        while True:
            view = await self.get(account_id)
            if check(view):
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"account {account_id} never got there: {view}")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def running(
    servers: Any,
    fake: Any,
    *,
    dispatchers: int = 1,
    db: str = "accounts",
    tracer_provider: TracerProvider | None = None,
    roles: tuple[str, ...] = ("poller", "billing"),
    **extra: Any,
) -> AsyncIterator[System]:
    """The gateway, `dispatchers` dispatcher replicas and `roles`, all with the `acct` provider on `fake`."""
    from pixsim_billing.app import BillingSettings
    from pixsim_billing.app import create_app as billing
    from pixsim_dispatcher.app import DispatcherSettings
    from pixsim_dispatcher.app import create_app as dispatcher
    from pixsim_gateway.app import GatewaySettings
    from pixsim_gateway.app import create_app as gateway
    from pixsim_poller.app import PollerSettings
    from pixsim_poller.app import create_app as poller

    settings = service_settings(servers, db=db, **{**FAST, **extra})
    tp = tracer_provider or TracerProvider()
    factories = {"poller": (poller, PollerSettings), "billing": (billing, BillingSettings)}
    apps = [gateway(GatewaySettings(**settings), tracer_provider=tp, registry=registry(fake.url))]
    apps += [
        dispatcher(DispatcherSettings(**settings), tracer_provider=tp, registry=registry(fake.url))
        for _ in range(dispatchers)
    ]
    apps += [
        create(cls(**settings), tracer_provider=tp, registry=registry(fake.url))
        for create, cls in (factories[r] for r in roles)
    ]
    async with serve(*apps) as served, api_client(served[0].url) as api:
        yield System(api, mongo_db(servers.mongo_url, db), servers.nats_url, settings)


async def stream_messages(nats_url: str, stream: str) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message in the stream so far: (subject, headers, data)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(stream)).state.last_seq
        out: list[tuple[str, dict[str, str], bytes]] = []
        if not last:
            return out
        sub = await js.subscribe(">", ordered_consumer=True, stream=stream)
        while True:
            msg = await sub.next_msg(timeout=5)
            out.append((msg.subject, dict(msg.headers or {}), msg.data))
            if msg.metadata.sequence.stream >= last:
                break
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


async def account_events(nats_url: str, account_id: str) -> list[dict[str, Any]]:
    from pixsim_contracts import subjects

    return [
        json.loads(data)
        for subject, _, data in await stream_messages(nats_url, subjects.ACCOUNTS_STREAM)
        if subject.startswith(f"pixsim.accounts.{account_id}.")
    ]


async def wait_all(system: System, gids: list[str], timeout: float = 30) -> dict[str, dict[str, Any]]:
    from support import wait_for

    return {gid: await wait_for(system.api, gid, timeout=timeout) for gid in gids}


async def start_billing(env: dict[str, str], *, wait_ready: bool = True) -> subprocess.Popen:
    """Billing as a process of its own (so that it can be SIGKILLed), ready when this returns."""
    from system.kit import start_service

    return await start_service("pixsim_billing", env, ready=wait_ready)
